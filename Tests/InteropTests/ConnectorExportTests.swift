import Bridges
import Checkpoint
import TensorFiles
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

    /// One exported case: our float32 output, our output from the reloaded file, the connector.
    struct Exported {
        var ours: Tensor
        var reloaded: Tensor
        var connector: any Connector
        var job: TorchJob
    }

    /// Exports `c` at `dtype` into `dir` (weights and inputs), runs our side (the model and the
    /// model reloaded from the file: at 16 bits, the weights PyTorch sees).
    func export(_ c: Case, dtype: WeightDType, seed: UInt64, into dir: String) throws -> Exported {
        let connector = try makeConnector(c.configuration, seed: seed)
        randomizeParameters(connector, seed: seed)
        let levels = c.configuration.featureLevels.indices.map { i in
            FeatureLevel(
                randomTensor([2, c.grid.count, c.configuration.visionDim], seed: seed &+ 100 &+ UInt64(i)),
                grid: c.grid)
        }
        let ours = try connector(levels)
        let tag = "\(c.name)-\(dtype)"
        let weights = dir + "/\(tag).h5", inputs = dir + "/\(tag)-inputs.h5"
        try WeightsFile.save(module: connector, to: weights, dtype: dtype, config: configJSON(c.configuration))
        try WeightsFile.write(NamedTensors(levels.enumerated().map { ("x\($0.offset)", $0.element.features) }), to: inputs)
        let reloadedConnector = try makeConnector(c.configuration, seed: seed &+ 1)
        try WeightsFile.load(into: reloadedConnector, from: weights)
        let reloaded = try reloadedConnector(levels)
        let job = TorchJob(
            weights: weights, inputs: inputs, levels: levels.count, grid: [c.grid.height, c.grid.width],
            output: dir + "/\(tag)-torch.h5")
        return Exported(ours: ours, reloaded: reloaded, connector: connector, job: job)
    }

    @Test(Python.requires("torch", "h5py"))
    func float32ExportsMatchPyTorch() throws {
        let dir = try temporaryDirectory("interop-f32")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exported = try Self.cases.map { try export($0, dtype: .float32, seed: 7, into: dir) }
        let reports = try runTorchConnectors(exported.map(\.job), directory: dir)
        for (c, (e, report)) in zip(Self.cases, zip(exported, reports)) {
            let names = e.connector.stateDict().map(\.0)
            #expect(report.keys == names, "\(c): state_dict keys differ from our export")
            #expect(report.fileKeys == names, "\(c): file order differs from module order")
            #expect(report.dtypes == ["torch.float32"], "\(c)")
            let torch = try WeightsFile.open(e.job.output).readTensor("out")
            try #require(torch.shape == e.ours.shape, "\(c): PyTorch \(torch.shape) vs ours \(e.ours.shape)")
            let error = relativeError(e.ours.scalars, torch.scalars)
            #expect(error <= 1e-4, "\(c): max|ours - torch| / max|torch| = \(error)")
            #expect(e.ours.scalars == e.reloaded.scalars, "\(c): a float32 round trip must be exact")
        }
    }

    /// 16-bit exports: PyTorch gets bfloat16 / float16 tensors, computes what our model computes from
    /// the same file (1e-4), and both stay within the stored type's rounding of the float32 model.
    @Test(Python.requires("torch", "h5py"))
    func sixteenBitExportsMatchWithinRounding() throws {
        let dir = try temporaryDirectory("interop-16")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kinds: [(WeightDType, String, Double)] = [
            (.bfloat16, "torch.bfloat16", 3e-2), (.float16, "torch.float16", 4e-3),
        ]
        let chosen = Self.cases.filter { ["mlp2x_gelu", "attention_pooling", "c_abstractor", "chain_of_sight"].contains($0.name) }
        var runs: [(Case, WeightDType, String, Double, Exported)] = []
        for (dtype, torchName, tolerance) in kinds {
            for c in chosen {
                runs.append((c, dtype, torchName, tolerance, try export(c, dtype: dtype, seed: 11, into: dir)))
            }
        }
        let reports = try runTorchConnectors(runs.map(\.4.job), directory: dir)
        for ((c, dtype, torchName, tolerance, e), report) in zip(runs, reports) {
            #expect(report.dtypes == [torchName], "\(c) at \(dtype)")
            #expect(report.keys == e.connector.stateDict().map(\.0), "\(c) at \(dtype)")
            let torch = try WeightsFile.open(e.job.output).readTensor("out")
            try #require(torch.shape == e.ours.shape)
            let same = relativeError(e.reloaded.scalars, torch.scalars)
            #expect(same <= 1e-4, "\(c) at \(dtype): ours from the file vs PyTorch \(same)")
            let rounding = relativeError(torch.scalars, e.ours.scalars)
            #expect(rounding <= tolerance, "\(c) at \(dtype): vs the float32 model \(rounding)")
            #expect(rounding > 0, "\(c) at \(dtype): the stored weights were not rounded")
        }
    }
}
