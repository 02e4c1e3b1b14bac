import Bridges
import Foundation
import SightlineTestSupport
import Testing

@Suite struct ConnectorTests {
    static let configurations: [ConnectorConfiguration] = [
        .projection(ProjectionConfig(visionDim: 8, llmDim: 6, depth: 1)),
        .projection(ProjectionConfig(visionDim: 8, llmDim: 6, depth: 2)),
        .averagePooling(AveragePoolingConfig(visionDim: 8, llmDim: 6, outputGrid: .square(3))),
        .attentionPooling(AttentionPoolingConfig(visionDim: 8, llmDim: 6, queries: 5, heads: 2)),
        .cAbstractor(
            CAbstractorConfig(
                visionDim: 8, hiddenSize: 8, llmDim: 6, depth: 1, numQueries: 4, inputGrid: .square(4))),
        .chainOfSight(
            ChainOfSightConfig(
                visionDim: 8, llmDim: 6, headDim: 4, grid: .square(4),
                scales: [WindowScale(windowSize: 4, queries: 2), WindowScale(windowSize: 2, queries: 4)],
                featureLevels: [1, 2])),
    ]

    // MARK: Protocol, configs, factory

    @Test func configurationsRoundTripThroughJSONAndBuildMatchingConnectors() throws {
        for config in Self.configurations {
            let data = try JSONEncoder().encode(config)
            let json = String(decoding: data, as: UTF8.self)
            #expect(json.contains("\"type\":\"\(config.type)\""), "\(json)")
            let back = try JSONDecoder().decode(ConnectorConfiguration.self, from: data)
            #expect(back == config)
            let connector = try makeConnector(back, seed: 4)
            #expect(connector.configuration == config)
            let grid = Grid.square(4)
            let x = features(2, grid, 8, seed: 9)
            let y = try connector(x, grid: grid)
            #expect(y.shape == [2, try connector.tokenCount(grid: grid), 6], "\(config.type)")
            #expect(connector.featureLevels.count == config.featureLevels.count)
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ConnectorConfiguration.self, from: Data("{\"type\": \"qformer\"}".utf8))
        }
    }

    @Test func chainOfSightConfigDecodesWithDefaults() throws {
        let json = """
            {"type": "chain_of_sight", "visionDim": 1024, "llmDim": 4096, "grid": {"height": 16, "width": 16},
             "scales": [{"windowSize": 16, "queries": 16}, {"windowSize": 4, "queries": 64}]}
            """
        let c = try JSONDecoder().decode(ConnectorConfiguration.self, from: Data(json.utf8))
        #expect(c == .chainOfSight(.preset(.v1)))
        #expect(try c.tokenCount(grid: .square(16)) == 80)
    }

    @Test func tokenCountsOfTheOtherConnectors() throws {
        let g16 = Grid.square(16), g24 = Grid.square(24)
        #expect(
            try ConnectorConfiguration.projection(ProjectionConfig(visionDim: 1024, llmDim: 4096)).tokenCount(
                grid: g24) == 576)
        #expect(
            try ConnectorConfiguration.averagePooling(
                AveragePoolingConfig(visionDim: 1024, llmDim: 4096, outputGrid: .square(12))
            ).tokenCount(grid: g24) == 144)
        #expect(
            try ConnectorConfiguration.attentionPooling(
                AttentionPoolingConfig(visionDim: 1024, llmDim: 4096, queries: 64)
            ).tokenCount(grid: g16) == 64)
        let cabs = ConnectorConfiguration.cAbstractor(
            CAbstractorConfig(visionDim: 1024, llmDim: 4096, numQueries: 144, inputGrid: g24))
        #expect(try cabs.tokenCount(grid: g24) == 144)
        #expect(throws: TensorError.self) { try cabs.tokenCount(grid: g16) }
        let resampler = try ConnectorConfiguration.resampler(
            visionDim: 1024, llmDim: 4096, grid: g16, queries: 336)
        #expect(try resampler.tokenCount(grid: g16) == 336)
        #expect(throws: TensorError.self) {
            try ConnectorConfiguration.resampler(
                visionDim: 8, llmDim: 8, grid: Grid(height: 4, width: 8), queries: 4)
        }
    }

    // MARK: Projection (LLaVA-1.5 full-token baseline)

    @Test func projectionNamesFollowLLaVA() throws {
        let linear = try ProjectionConnector(ProjectionConfig(visionDim: 4, llmDim: 5, depth: 1))
        #expect(linear.namedParameters().map(\.0) == ["weight", "bias"])
        let mlp = try ProjectionConnector(ProjectionConfig(visionDim: 4, llmDim: 5, depth: 3))
        #expect(
            mlp.namedParameters().map(\.0) == [
                "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias",
            ])
        #expect(throws: TensorError.self) {
            try ProjectionConnector(ProjectionConfig(visionDim: 4, llmDim: 5, depth: 0))
        }
    }

    @Test func projectionMatchesPyTorch() throws {
        let f = try loadFixtureCase("projection_mlp2", group: "bridges")
        let m = try ProjectionConnector(
            ProjectionConfig(
                visionDim: try f.int("visionDim"), llmDim: try f.int("llmDim"), depth: try f.int("depth")))
        try loadWeights(m, from: f)
        let r = try compareWithFixture(m, f, inputs: [f.tensor("x0")]) { xs in try m(xs[0], grid: .square(3))
        }
        #expect(r.output < 1e-4 && r.gradient < 1e-3, "\(r)")
    }

    // MARK: Average pooling (MM1)

    /// Adaptive-average-pooled tokens computed directly from PyTorch's bin rule.
    func expectedPool(_ x: Tensor, grid: Grid, out: Grid) -> [Float] {
        let (b, c) = (x.shape[0], x.shape[2])
        let s = x.scalars
        var y: [Float] = []
        for n in 0..<b {
            for i in 0..<out.height {
                let r0 = (i * grid.height) / out.height,
                    r1 = ((i + 1) * grid.height + out.height - 1) / out.height
                for j in 0..<out.width {
                    let c0 = (j * grid.width) / out.width,
                        c1 = ((j + 1) * grid.width + out.width - 1) / out.width
                    for ch in 0..<c {
                        var sum = 0.0
                        for r in r0..<r1 {
                            for q in c0..<c1 {
                                sum += Double(s[(n * grid.count + r * grid.width + q) * c + ch])
                            }
                        }
                        y.append(Float(sum / Double((r1 - r0) * (c1 - c0))))
                    }
                }
            }
        }
        return y
    }

    @Test(arguments: [(16, 8), (16, 12), (27, 12), (24, 12)])
    func averagePoolingBins(input: Int, output: Int) throws {
        let m = try AveragePoolingConnector(
            AveragePoolingConfig(visionDim: 3, llmDim: 4, outputGrid: .square(output)))
        let grid = Grid.square(input)
        let x = features(2, grid, 3, seed: UInt64(input * 100 + output))
        let pooled = try m.pool(FeatureLevel(x, grid: grid))
        #expect(pooled.shape == [2, output * output, 3])
        #expect(relativeError(pooled.scalars, expectedPool(x, grid: grid, out: .square(output))) < 1e-6)
        #expect(try m(x, grid: grid).shape == [2, output * output, 4])
        #expect(try m.tokenCount(grid: grid) == output * output)
        if input == 27 {
            // 27 -> 12: overlapping bins of 3 (e.g. bin 1 covers rows 2..<5).
            #expect((1 * 27) / 12 == 2 && (2 * 27 + 11) / 12 == 5)
        }
    }

    @Test func averagePoolingMatchesPyTorch() throws {
        let f = try loadFixtureCase("average_pooling", group: "bridges")
        let m = try AveragePoolingConnector(
            AveragePoolingConfig(visionDim: 2, llmDim: 3, outputGrid: .square(12)))
        try loadWeights(m, from: f)
        let r = try compareWithFixture(m, f, inputs: [f.tensor("x0")]) { xs in try m(xs[0], grid: .square(27))
        }
        #expect(r.output < 1e-4 && r.gradient < 1e-3, "\(r)")
    }

    // MARK: Attention pooling (MM1)

    @Test func attentionPoolingStructure() throws {
        let m = try AttentionPoolingConnector(AttentionPoolingConfig(visionDim: 128, llmDim: 16, queries: 64))
        #expect(m.attn.numHeads == 2)  // C / 64
        #expect(m.query.shape == [1, 64, 128])
        #expect(
            m.namedParameters().map(\.0).prefix(4) == ["query", "ln_q.weight", "ln_q.bias", "ln_kv.weight"])
        #expect(throws: TensorError.self) {
            try AttentionPoolingConnector(
                AttentionPoolingConfig(visionDim: 8, llmDim: 4, queries: 2, heads: 3))
        }
    }

    @Test func attentionPoolingMatchesPyTorch() throws {
        let f = try loadFixtureCase("attention_pooling", group: "bridges")
        let m = try AttentionPoolingConnector(
            AttentionPoolingConfig(
                visionDim: try f.int("visionDim"), llmDim: try f.int("llmDim"), queries: try f.int("queries"),
                heads: try f.int("heads"),
                mlpRatio: try f.int("mlpRatio")))
        try loadWeights(m, from: f)
        let r = try compareWithFixture(m, f, inputs: [f.tensor("x0")]) { xs in try m(xs[0], grid: .square(3))
        }
        #expect(r.output < 1e-4 && r.gradient < 1e-3, "\(r)")
    }

    // MARK: Single-scale resampler baseline

    @Test func singleScaleResamplerKeepsAllQueriesInOneGlobalWindow() throws {
        let config = try ConnectorConfiguration.resampler(
            visionDim: 8, llmDim: 6, grid: .square(4), queries: 12, featureLevels: [23], headDim: 4)
        let m = try #require(try makeConnector(config) as? ChainOfSight)
        #expect(m.layouts.map(\.windows) == [1])
        #expect(m.namedParameters().map(\.0).contains("attn_0_w4_l22_q12.to_q.weight"))
        let y = try m(features(2, .square(4), 8, seed: 1), grid: .square(4))
        #expect(y.shape == [2, 12, 6])
        // Every token sees every patch: the last patch changes every token.
        let x = features(1, .square(4), 8, seed: 2)
        let a = tokenRows(try m(x, grid: .square(4))),
            b = tokenRows(try m(perturbPatch(x, grid: .square(4), row: 3, col: 3), grid: .square(4)))
        #expect(zip(a, b).allSatisfy { $0 != $1 })
    }
}
