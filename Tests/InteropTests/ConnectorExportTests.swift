import Bridges
import Checkpoint
import Foundation
import SightlineTestSupport
import Testing

/// Every connector exported with our HDF5 writer loads into its `sightline_torch` module with
/// `strict=True` (same keys, same order) and gives our outputs within 1e-4 relative.
@Suite struct ConnectorExportTests {
    /// One case per connector type (and the variants whose names or math differ).
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var configuration: ConnectorConfiguration
        var grid: Grid

        var description: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "linear", configuration: .projection(ProjectionConfig(visionDim: 12, llmDim: 10, depth: 1)),
            grid: .square(4)),
        Case(
            name: "mlp2x_gelu",
            configuration: .projection(ProjectionConfig(visionDim: 12, llmDim: 10, depth: 2)), grid: .square(4)),
        Case(
            name: "mlp3x_gelu",
            configuration: .projection(ProjectionConfig(visionDim: 12, llmDim: 10, depth: 3)), grid: .square(3)),
        // 4x6 -> 3x4: overlapping PyTorch bins along the height, a non-square grid.
        Case(
            name: "average_pooling",
            configuration: .averagePooling(AveragePoolingConfig(visionDim: 12, llmDim: 10, outputGrid: Grid(height: 3, width: 4))),
            grid: Grid(height: 4, width: 6)),
        Case(
            name: "attention_pooling",
            configuration: .attentionPooling(
                AttentionPoolingConfig(visionDim: 16, llmDim: 10, queries: 5, heads: 4, mlpRatio: 2, layerNormEps: 1e-6)),
            grid: .square(5)),
        // hiddenSize != visionDim: the first block of net.0 has a downsample; 5x5 -> 2x2 overlapping bins.
        Case(
            name: "c_abstractor",
            configuration: .cAbstractor(
                CAbstractorConfig(
                    visionDim: 8, hiddenSize: 12, llmDim: 10, depth: 2, mlpDepth: 2, numQueries: 4,
                    inputGrid: .square(5))),
            grid: .square(5)),
        Case(
            name: "c_abstractor_depth0",
            configuration: .cAbstractor(
                CAbstractorConfig(
                    visionDim: 8, hiddenSize: 12, llmDim: 10, depth: 0, mlpDepth: 3, numQueries: 9,
                    inputGrid: .square(6), posEmb: false)),
            grid: .square(6)),
        // Three scales (1, 4 and 16 windows; 4, 2 and 1 queries per window), two levels, dim != visionDim.
        Case(
            name: "chain_of_sight",
            configuration: .chainOfSight(
                ChainOfSightConfig(
                    visionDim: 12, dim: 8, llmDim: 10, headDim: 4, mlpRatio: 2, grid: .square(8),
                    scales: [
                        WindowScale(windowSize: 8, queries: 4), WindowScale(windowSize: 4, queries: 8),
                        WindowScale(windowSize: 2, queries: 16),
                    ],
                    featureLevels: [3, 5])),
            grid: .square(8)),
        Case(
            name: "resampler",
            configuration: try! .resampler(visionDim: 12, llmDim: 10, grid: .square(4), queries: 6, featureLevels: [2], headDim: 4),
            grid: .square(4)),
    ]

    /// Exports `c` at `dtype`, runs both sides, returns (ours at float32, ours reloaded from the
    /// file, PyTorch's) outputs and the PyTorch report.
    func exportAndRun(_ c: Case, dtype: WeightDType, seed: UInt64) throws
        -> (ours: Tensor, reloaded: Tensor, torch: Tensor, report: TorchReport, connector: any Connector)
    {
        let dir = try temporaryDirectory("interop-\(c.name)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let connector = try makeConnector(c.configuration, seed: seed)
        randomizeParameters(connector, seed: seed)
        let levels = c.configuration.featureLevels.indices.map { i in
            FeatureLevel(randomTensor([2, c.grid.count, c.configuration.visionDim], seed: seed &+ 100 &+ UInt64(i)), grid: c.grid)
        }
        let ours = try connector(levels)

        let weights = dir + "/connector.h5", inputs = dir + "/inputs.h5", output = dir + "/torch.h5"
        try WeightsFile.save(module: connector, to: weights, dtype: dtype, config: configJSON(c.configuration))
        var named: [(String, Tensor)] = []
        for (i, level) in levels.enumerated() { named.append(("x\(i)", level.features)) }
        try WeightsFile.write(NamedTensors(named), to: inputs)

        // Our own reader on the same file: at 16 bits, the weights PyTorch sees.
        let reloadedConnector = try makeConnector(c.configuration, seed: seed &+ 1)
        try WeightsFile.load(into: reloadedConnector, from: weights)
        let reloaded = try reloadedConnector(levels)

        let report = try runTorchConnector(
            weights: weights, inputs: inputs, levels: levels.count, grid: c.grid, output: output)
        let torch = try WeightsFile.open(output).readTensor("out")
        return (ours, reloaded, torch, report, connector)
    }

    @Test(Python.requires("torch", "h5py"), arguments: cases)
    func float32ExportMatchesPyTorch(_ c: Case) throws {
        let r = try exportAndRun(c, dtype: .float32, seed: 7)
        let names = r.connector.stateDict().map(\.0)
        #expect(r.report.keys == names, "\(c): state_dict keys differ from our export")
        #expect(r.report.fileKeys == names, "\(c): file order differs from module order")
        #expect(r.report.dtypes == ["torch.float32"])
        try #require(r.torch.shape == r.ours.shape, "\(c): PyTorch \(r.torch.shape) vs ours \(r.ours.shape)")
        let error = relativeError(r.ours.scalars, r.torch.scalars)
        #expect(error <= 1e-4, "\(c): max|ours - torch| / max|torch| = \(error)")
        #expect(r.ours.scalars == r.reloaded.scalars, "\(c): a float32 round trip must be exact")
    }

    /// 16-bit exports: PyTorch gets bfloat16 / float16 tensors, computes exactly what our model
    /// computes from the same file (1e-4), and both stay within the rounding of the stored type
    /// from the float32 model.
    @Test(
        Python.requires("torch", "h5py"),
        arguments: [(WeightDType.bfloat16, "torch.bfloat16", 3e-2), (WeightDType.float16, "torch.float16", 4e-3)])
    func sixteenBitExportsMatchWithinRounding(_ dtype: WeightDType, _ torchName: String, _ tolerance: Double) throws {
        for c in Self.cases where ["mlp2x_gelu", "c_abstractor", "chain_of_sight"].contains(c.name) {
            let r = try exportAndRun(c, dtype: dtype, seed: 11)
            #expect(r.report.dtypes == [torchName], "\(c) at \(dtype)")
            #expect(r.report.keys == r.connector.stateDict().map(\.0))
            try #require(r.torch.shape == r.ours.shape)
            let same = relativeError(r.reloaded.scalars, r.torch.scalars)
            #expect(same <= 1e-4, "\(c) at \(dtype): ours from the file vs PyTorch \(same)")
            let rounding = relativeError(r.torch.scalars, r.ours.scalars)
            #expect(rounding <= tolerance, "\(c) at \(dtype): vs the float32 model \(rounding)")
            #expect(rounding > 0, "\(c) at \(dtype): the stored weights were not rounded")
        }
    }
}
