import Bridges
import SightlineTestSupport
import Testing

@Suite struct ChainOfSightTests {
    // MARK: Configurations and token counts (reference A.4, reviewer test 1)

    @Test func presetTokenCountsMatchTheReferenceTable() throws {
        let expected: [ChainOfSightPreset: (grid: Int, tokens: Int, perWindow: [Int])] = [
            .v1: (16, 80, [16, 4]), .v1Baseline: (16, 80, [80]), .v1_336: (24, 80, [16, 4]),
            .v1_448_q16_64: (32, 80, [16, 4]), .v1_448_q16_64_256: (32, 336, [16, 16, 4]),
            .v1_448_q16_256_1024: (32, 1296, [16, 16, 4]), .v2_448_q16_256_1024: (32, 1296, [16, 4, 4]),
            .v1_448_q16_64_1024: (32, 1104, [16, 4, 4]), .pt32: (16, 32, [16, 1]),
            .pt32_448_q16_256_256: (32, 528, [16, 16, 1]), .demo_q16_64_64: (16, 144, [16, 16, 1]),
            .demo_q16_64_256: (16, 336, [16, 16, 1]),
        ]
        #expect(expected.count == ChainOfSightPreset.allCases.count)
        for preset in ChainOfSightPreset.allCases {
            let want = try #require(expected[preset])
            let config = ChainOfSightConfig.preset(preset)
            #expect(config.grid == .square(want.grid), "\(preset)")
            #expect(try config.tokenCount(grid: .square(want.grid)) == want.tokens, "\(preset)")
            #expect(
                try ConnectorConfiguration.chainOfSight(config).tokenCount(grid: .square(want.grid))
                    == want.tokens)
            #expect(try config.layouts().map(\.queriesPerWindow) == want.perWindow, "\(preset)")
        }
        #expect(ChainOfSightConfig.preset(.v1Baseline).featureLevels == [23])
        #expect(ChainOfSightConfig.preset(.v1).featureLevels == [16, 23])
        #expect(ChainOfSightConfig.defaultFeatureLevels(towerDepth: 24) == [16, 23])
        #expect(ChainOfSightConfig.defaultFeatureLevels(towerDepth: 12) == [8, 11])
    }

    @Test func outputShapeIsBatchByTokensByLLMWidth() throws {
        let config = ChainOfSightConfig.preset(
            .pt32, visionDim: 16, llmDim: 12, headDim: 8, featureLevels: [2, 4])
        let m = try ChainOfSight(config, seed: 3)
        let x = features(3, .square(16), 16, seed: 1)
        let y = try m([FeatureLevel(x, grid: .square(16)), FeatureLevel(x, grid: .square(16))])
        #expect(y.shape == [3, 32, 12])
        #expect(try m.tokenCount(grid: .square(16)) == 32)
    }

    // MARK: Parameter names (verified reference: 62 tensors, 54,663,168 parameters for v1)

    @Test func releasedParameterNamesAndCountForV1() throws {
        let shapes = try ChainOfSight.parameterShapes(.preset(.v1))
        #expect(shapes.count == 62)
        #expect(shapes.reduce(0) { $0 + $1.1.reduce(1, *) } == 54_663_168)
        let names = shapes.map(\.0)
        #expect(
            Array(names.prefix(3)) == [
                "cls_token_w16_q16", "cls_token_w4_q64", "attn_0_w16_l15_q16.to_q.weight",
            ])
        #expect(names.contains("attn_0_w4_l22_q64.to_kv.weight"))
        #expect(names.contains("mlp_0_w16_l22_q16.fc2.bias"))
        #expect(names.contains("ln_0_w4_l15_q64.weight"))
        #expect(Array(names.suffix(2)) == ["out_proj.weight", "out_proj.bias"])
        #expect(shapes.first { $0.0 == "attn_0_w16_l15_q16.to_kv.weight" }?.1 == [2048, 1024])
        // Registration order: level-major, scales within a level, attn/mlp/ln per block.
        let blockOrder = names.filter { $0.hasSuffix("to_q.weight") }
        #expect(
            blockOrder == [
                "attn_0_w16_l15_q16.to_q.weight", "attn_0_w4_l15_q64.to_q.weight",
                "attn_0_w16_l22_q16.to_q.weight",
                "attn_0_w4_l22_q64.to_q.weight",
            ])
    }

    @Test func builtModuleNamesEqualTheStaticList() throws {
        let m = try smallChainOfSight()
        let built = m.namedParameters().map { ($0.0, $0.1.shape) }
        let listed = try ChainOfSight.parameterShapes(m.config)
        #expect(built.map(\.0) == listed.map(\.0))
        #expect(built.map(\.1) == listed.map(\.1))
        // No bias on to_q / to_kv; a bias on proj.
        #expect(!built.contains { $0.0.hasSuffix("to_q.bias") || $0.0.hasSuffix("to_kv.bias") })
        #expect(built.contains { $0.0 == "attn_0_w8_l2_q4.proj.bias" })
    }

    @Test func initialisationFollowsTheReleasedCode() throws {
        let m = try ChainOfSight(.preset(.pt32, visionDim: 64, llmDim: 32), seed: 9)
        let q = m.queries[0].data.scalars.map(Double.init)
        let mean = q.reduce(0, +) / Double(q.count)
        let std = (q.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(q.count)).squareRoot()
        #expect(abs(std - 0.02) < 0.003 && abs(mean) < 0.003, "queries std \(std) mean \(mean)")
        #expect(m.outProj.bias!.data.scalars.allSatisfy { $0 == 0 })
        #expect(m.lnOut.weight!.data.scalars.allSatisfy { $0 == 1 })
    }

    // MARK: Bad input (reviewer test 2)

    @Test func badConfigurationsFailWithTheScaleAndNumbers() throws {
        func message(_ scales: [(Int, Int)], grid: Int = 16) -> String {
            let c = ChainOfSightConfig(
                visionDim: 8, llmDim: 8, headDim: 4, grid: .square(grid),
                scales: scales.map { WindowScale(windowSize: $0.0, queries: $0.1) })
            do {
                _ = try ChainOfSight(c)
                return ""
            } catch {
                return "\(error)"
            }
        }
        let tiling = message([(16, 16), (5, 16)])
        #expect(
            tiling.contains("scale 1") && tiling.contains("window size 5") && tiling.contains("16x16"),
            "\(tiling)")
        let fewer = message([(16, 16), (4, 8)])
        #expect(
            fewer.contains("scale 1") && fewer.contains("8 queries") && fewer.contains("16 windows"),
            "\(fewer)")
        let uneven = message([(4, 24)])
        #expect(
            uneven.contains("scale 0") && uneven.contains("24 queries") && uneven.contains("16 windows"),
            "\(uneven)")
        let collide = message([(4, 16), (4, 16)])
        #expect(collide.contains("collide"), "\(collide)")
        #expect(throws: TensorError.self) {
            try ChainOfSight(
                ChainOfSightConfig(
                    visionDim: 8, llmDim: 8, headDim: 3, grid: .square(4),
                    scales: [WindowScale(windowSize: 4, queries: 1)]))
        }
        #expect(throws: TensorError.self) {
            try ChainOfSight(
                ChainOfSightConfig(
                    visionDim: 8, llmDim: 8, headDim: 4, grid: .square(4),
                    scales: [WindowScale(windowSize: 4, queries: 1)], featureLevels: [0]))
        }
    }

    @Test func wrongFeatureGridFailsWithBothSizes() throws {
        let m = try smallChainOfSight()
        let x = features(1, .square(6), 12, seed: 2)
        do {
            _ = try m(x, grid: .square(6))
            Issue.record("a 6x6 grid was accepted by an 8x8 connector")
        } catch {
            let s = "\(error)"
            #expect(s.contains("6x6") && s.contains("36") && s.contains("8x8") && s.contains("64"), "\(s)")
        }
        #expect(throws: TensorError.self) { try m.tokenCount(grid: .square(6)) }
        // Tokens that do not fill the grid they claim.
        #expect(throws: TensorError.self) {
            try m([FeatureLevel(x, grid: .square(8)), FeatureLevel(x, grid: .square(8))])
        }
        // Wrong number of levels.
        #expect(throws: TensorError.self) {
            try m([FeatureLevel(features(1, .square(8), 12, seed: 1), grid: .square(8))])
        }
    }

    // MARK: Window partition, locality and order (reviewer tests 3-6)

    @Test func windowPartitionIsRowMajorOverWindowsAndPatches() throws {
        // Token value = its patch index, on a 4x4 grid with 2x2 windows.
        let x = try Tensor(shape: [1, 16, 1], (0..<16).map(Float.init))
        let w = try windowPartition(x, grid: .square(4), windowSize: 2)
        #expect(w.shape == [4, 4, 1])
        #expect(w.scalars == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15])
        // Batch-major: row b * windows + w.
        let x2 = try Tensor.concatenate([x, x + 100], axis: 0)
        let w2 = try windowPartition(x2, grid: .square(4), windowSize: 2)
        #expect(Array(w2.scalars[16..<20]) == [100, 101, 104, 105])
    }

    /// Tokens that differ (not bit-identical) between two `[1, T, D]` outputs.
    func changedTokens(_ a: Tensor, _ b: Tensor) -> Set<Int> {
        Set(
            zip(tokenRows(a), tokenRows(b)).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        )
    }

    @Test func perturbingOneWindowChangesOnlyItsTokensAndTheGlobalOnes() throws {
        let m = try smallChainOfSight()
        let grid = Grid.square(8)
        let x = features(1, grid, 12, seed: 5)
        let y0 = try m([FeatureLevel(x, grid: grid), FeatureLevel(x * 0.5, grid: grid)])
        // Perturb the bottom-right 4x4 window (window 3 of scale 1) at every level.
        var xp = x
        for r in 4..<8 { for c in 4..<8 { xp = perturbPatch(xp, grid: grid, row: r, col: c) } }
        let y1 = try m([FeatureLevel(xp, grid: grid), FeatureLevel(xp * 0.5, grid: grid)])
        // Scale 0: tokens 0..<4 (global); scale 1: 4 + 3*2 ..< 4 + 4*2; scale 2 (2x2 windows on a 4x4
        // window grid): windows (2,2), (2,3), (3,2), (3,3) = 10, 11, 14, 15, at 12 + index.
        let allowed: Set<Int> = [0, 1, 2, 3, 10, 11, 22, 23, 26, 27]
        let changed = changedTokens(y0, y1)
        #expect(
            changed.isSubset(of: allowed),
            "unexpected tokens changed: \(changed.subtracting(allowed).sorted())")
        #expect(
            changed == allowed,
            "tokens of the perturbed window did not change: \(allowed.subtracting(changed).sorted())")
    }

    @Test func topLeftPatchReachesTheFirstWindowOfEveryLocalScale() throws {
        let m = try smallChainOfSight()
        let grid = Grid.square(8)
        let x = features(1, grid, 12, seed: 6)
        let y0 = try m(x, grid: grid)
        let y1 = try m(perturbPatch(x, grid: grid, row: 0, col: 0), grid: grid)
        // Global 0..<4, scale 1 window 0 = tokens 4, 5, scale 2 window 0 = token 12.
        #expect(changedTokens(y0, y1) == [0, 1, 2, 3, 4, 5, 12])
        // Patch (1, 3): scale 1 window 0 (tokens 4, 5), scale 2 window (0, 1) = token 13.
        let y2 = try m(perturbPatch(x, grid: grid, row: 1, col: 3), grid: grid)
        #expect(changedTokens(y0, y2) == [0, 1, 2, 3, 4, 5, 13])
        // Patch (2, 4): scale 1 window 1 (tokens 6, 7), scale 2 window (1, 2) = 4 + 2 = 6 -> token 18.
        let y3 = try m(perturbPatch(x, grid: grid, row: 2, col: 4), grid: grid)
        #expect(changedTokens(y0, y3) == [0, 1, 2, 3, 6, 7, 18])
    }

    @Test func eachWindowOwnsItsSliceOfTheQueries() throws {
        let m = try smallChainOfSight()
        let grid = Grid.square(8)
        let x = features(1, grid, 12, seed: 7)
        let y0 = try m(x, grid: grid)
        // Change queries [2 * 2, 3 * 2) of scale 1: window 2's slice.
        var q = m.queries[1].data
        q.withUnsafeMutableBufferPointer { p in for i in (4 * 8)..<(6 * 8) { p[i] += 0.7 } }
        m.queries[1].data = q
        let y1 = try m(x, grid: grid)
        #expect(changedTokens(y0, y1) == [4 + 4, 4 + 5])
    }

    @Test func zeroingOneScaleLeavesTheOthersUntouched() throws {
        let m = try smallChainOfSight()
        let grid = Grid.square(8)
        let levels = [
            FeatureLevel(features(2, grid, 12, seed: 8), grid: grid),
            FeatureLevel(features(2, grid, 12, seed: 9), grid: grid),
        ]
        let before = try m.scaleTokens(levels)
        let out0 = try m(levels)
        m.queries[1].data = Tensor.zeros(m.queries[1].shape)
        let after = try m.scaleTokens(levels)
        let out1 = try m(levels)
        #expect(before[0].scalars == after[0].scalars)
        #expect(before[2].scalars == after[2].scalars)
        #expect(before[1].scalars != after[1].scalars)
        // After ln_out and out_proj (per token) the other scales' tokens are unchanged too.
        let t0 = try out0.narrow(axis: 1, start: 0, length: 4),
            t1 = try out1.narrow(axis: 1, start: 0, length: 4)
        #expect(t0.scalars == t1.scalars)
        let u0 = try out0.narrow(axis: 1, start: 12, length: 16),
            u1 = try out1.narrow(axis: 1, start: 12, length: 16)
        #expect(u0.scalars == u1.scalars)
    }

    @Test func batchElementsAreIndependent() throws {
        let m = try smallChainOfSight()
        let grid = Grid.square(8)
        let a = features(1, grid, 12, seed: 10), b = features(1, grid, 12, seed: 11)
        let ya = try m(a, grid: grid), yb = try m(b, grid: grid)
        let yab = try m(Tensor.concatenate([a, b], axis: 0), grid: grid)
        #expect(relativeError(yab.scalars, ya.scalars + yb.scalars) < 1e-6)
    }

    // MARK: Parity with the PyTorch re-implementation

    @Test func matchesPyTorchReference() throws {
        let f = try loadFixtureCase("cos_forward", group: "bridges")
        let scales = try numberLists(f, "scales").map {
            WindowScale(windowSize: Int($0[0]), queries: Int($0[1]))
        }
        let config = ChainOfSightConfig(
            visionDim: try f.int("visionDim"), dim: try f.int("dim"), llmDim: try f.int("llmDim"),
            headDim: try f.int("headDim"),
            mlpRatio: try f.int("mlpRatio"), grid: .square(try f.int("side")), scales: scales,
            featureLevels: try f.intArray("featureLevels"))
        let m = try ChainOfSight(config)
        try loadWeights(m, from: f)
        let grid = config.grid
        let result = try compareWithFixture(m, f, inputs: [f.tensor("x0"), f.tensor("x1")]) { xs in
            try m([FeatureLevel(xs[0], grid: grid), FeatureLevel(xs[1], grid: grid)])
        }
        #expect(result.output < 1e-4, "output relative error \(result.output)")
        #expect(
            result.gradient < 1e-3, "gradient relative error \(result.gradient) at \(result.worstGradient)")
    }
}
