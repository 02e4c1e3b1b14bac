import Bridges
import SightlineTestSupport
import Testing

@Suite struct CAbstractorTests {
    @Test func regNetBlockStructureAtHoneybeeWidth() throws {
        // One stage block at width 1024, as in Honeybee (depth 1 to keep the test small).
        let m = try CAbstractor(
            CAbstractorConfig(visionDim: 1024, llmDim: 8, depth: 1, numQueries: 4, inputGrid: .square(2)))
        let shapes = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.0, $0.1.shape) })
        #expect(shapes["net.0.b1.conv2.conv.weight"] == [1024, 1, 3, 3])  // depthwise: 1024 * 9 weights
        #expect(shapes["net.0.b1.conv2.conv.weight"].map { $0.reduce(1, *) } == 1024 * 9)
        #expect(shapes["net.0.b1.se.fc1.weight"] == [256, 1024, 1, 1])
        #expect(shapes["net.0.b1.se.fc2.weight"] == [1024, 256, 1, 1])
        #expect(shapes["net.0.b1.conv1.conv.weight"] == [1024, 1024, 1, 1])
        for conv in ["conv1", "conv2", "conv3"] {
            #expect(shapes["net.0.b1.\(conv).conv.bias"] == nil, "\(conv) has a bias")
            #expect(shapes["net.0.b1.\(conv).bn.weight"] == [1024])
        }
        #expect(!shapes.keys.contains { $0.contains("downsample") })  // identity shortcut
        #expect(shapes["pos_emb"] == [1, 4, 1024])
        #expect(shapes["readout.0.weight"] == [8, 1024] && shapes["readout.2.weight"] == [8, 8])
        #expect(shapes.keys.contains("net.2.b1.conv3.bn.bias"))
    }

    @Test func depthZeroIsPoolAndReadout() throws {
        let m = try CAbstractor(
            CAbstractorConfig(visionDim: 6, llmDim: 4, depth: 0, numQueries: 4, inputGrid: .square(4)))
        #expect(
            m.namedParameters().map(\.0) == [
                "pos_emb", "readout.0.weight", "readout.0.bias", "readout.2.weight", "readout.2.bias",
            ])
        #expect(try m(features(1, .square(4), 6, seed: 1), grid: .square(4)).shape == [1, 4, 4])
    }

    @Test func badConfigurationsAndInputsFail() throws {
        #expect(throws: TensorError.self) {
            try CAbstractor(CAbstractorConfig(visionDim: 6, llmDim: 4, numQueries: 12, inputGrid: .square(4)))
        }
        let m = try CAbstractor(
            CAbstractorConfig(
                visionDim: 6, hiddenSize: 8, llmDim: 4, depth: 1, numQueries: 4, inputGrid: .square(4)))
        do {
            _ = try m(features(1, .square(5), 6, seed: 1), grid: .square(5))
            Issue.record("a 5x5 grid was accepted with a 4x4 position embedding")
        } catch {
            #expect("\(error)".contains("5x5") && "\(error)".contains("4x4"), "\(error)")
        }
    }

    @Test func matchesTimmRegStageAndHoneybeeWrapper() throws {
        let f = try loadFixtureCase("c_abstractor", group: "bridges")
        let grid = try f.intPair("grid")
        let m = try CAbstractor(
            CAbstractorConfig(
                visionDim: try f.int("visionDim"), hiddenSize: try f.int("hiddenSize"),
                llmDim: try f.int("llmDim"), depth: try f.int("depth"),
                mlpDepth: try f.int("mlpDepth"), numQueries: try f.int("numQueries"),
                inputGrid: Grid(height: grid.0, width: grid.1)))
        try loadWeights(m, from: f)
        let r = try compareWithFixture(m, f, inputs: [f.tensor("x0")]) { xs in
            try m(xs[0], grid: Grid(height: grid.0, width: grid.1))
        }
        #expect(r.output < 1e-4, "output \(r.output)")
        #expect(r.gradient < 1e-3, "gradient \(r.gradient) at \(r.worstGradient)")
    }
}
