import Bridges
import SightlineTestSupport
import Testing

@Suite struct InflationTests {
    /// A trained `v1` layout (16x16 grid, windows [16, 4], queries [16, 64]) at tiny widths.
    func trainedV1(seed: UInt64 = 21) throws -> ChainOfSight {
        let m = try ChainOfSight(
            .preset(.v1, visionDim: 8, llmDim: 6, headDim: 4, featureLevels: [2, 3]), seed: seed)
        randomizeParameters(m, seed: seed)
        return m
    }

    func rows(_ p: Parameter) -> [[Float]] { tokenRows(p.data) }

    // MARK: Token counts and layouts of every extension preset

    @Test func extensionPresetsProduceTheReferenceLayouts() throws {
        let v1 = ChainOfSightConfig.preset(.v1)
        let pt32 = ChainOfSightConfig.preset(.pt32)
        let cases: [(ChainOfSightExtension, ChainOfSightConfig, ChainOfSightPreset, Int)] = [
            (.res224to448_80to80, v1, .v1_448_q16_64, 80),
            (.res224to448_80to336, v1, .v1_448_q16_64_256, 336),
            (.res224to448_80to1296, v1, .v1_448_q16_256_1024, 1296),
            (.res224to448_80to1296_v2, v1, .v2_448_q16_256_1024, 1296),
            (.res224to448_80to1104, v1, .v1_448_q16_64_1024, 1104),
            (.res224to448_32to528, pt32, .pt32_448_q16_256_256, 528),
            (.demo32to144, pt32, .demo_q16_64_64, 144),
            (.demo32to336, pt32, .demo_q16_64_256, 336),
        ]
        #expect(cases.count == ChainOfSightExtension.presets.count)
        for (spec, trained, target, tokens) in cases {
            let grid = spec.newGrid ?? target.grid
            let c = try ChainOfSight.inflatedConfig(trained, with: spec, grid: grid)
            #expect(c.scales == target.scales, "\(spec.name)")
            #expect(c.grid == target.grid, "\(spec.name)")
            #expect(try c.tokenCount(grid: grid) == tokens, "\(spec.name)")
        }
        // 32 -> 528 is the paper's "up to 16x".
        #expect(528 / 32 == 16)
    }

    @Test func mismatchedExtensionsFailWithTheNumbers() throws {
        let v1 = ChainOfSightConfig.preset(.v1)
        func message(_ spec: ChainOfSightExtension, trained: ChainOfSightConfig = v1, grid: Int = 32)
            -> String
        {
            do {
                _ = try ChainOfSight.inflatedConfig(trained, with: spec, grid: .square(grid))
                return ""
            } catch { return "\(error)" }
        }
        // The 80-token spec applied to the 32-token model.
        let wrongModel = message(.res224to448_80to1296, trained: .preset(.pt32))
        #expect(wrongModel.contains("(4, 64)") && wrongModel.contains("(4, 16)"), "\(wrongModel)")
        // A grid the spec was not written for.
        #expect(message(.res224to448_80to80, grid: 24).contains("24x24"))
        let bad = { (e: [ScaleExtension]) in message(ChainOfSightExtension(name: "t", newScales: e)) }
        #expect(bad([ScaleExtension(source: 2, windowRatio: 1, queryRepeat: 1)]).contains("source scale 2"))
        let frac = bad([ScaleExtension(source: 1, windowRatio: 0.3, queryRepeat: 1)])
        #expect(frac.contains("new scale 0") && frac.contains("1.2"), "\(frac)")
        #expect(bad([ScaleExtension(source: 1, windowRatio: 0.5, queryRepeat: 3)]).contains("query repeat 3"))
        // r = 1 at double resolution makes 8x8 windows, but m = 1 keeps the source's 4x4.
        let count = bad([ScaleExtension(source: 1, windowRatio: 1, queryRepeat: 1)])
        #expect(count.contains("new scale 0") && count.contains("8x8") && count.contains("4x4"), "\(count)")
    }

    // MARK: Query index maps (reviewer tests 7, 11)

    @Test func queryIndexMaps() throws {
        // m = 2: consecutive duplication.
        #expect(
            try inflatedQueryIndices(windowRows: 1, windowColumns: 2, queriesPerWindow: 2, repeat: 2) == [
                0, 0, 1, 1, 2, 2, 3, 3,
            ])
        // m = 4 over a 2x2 window grid, 1 query each: nearest-neighbour on the window grid, not tiling.
        #expect(
            try inflatedQueryIndices(windowRows: 2, windowColumns: 2, queriesPerWindow: 1, repeat: 4)
                == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])
        // The verified maps: 80to1296 w2_q1024 (16x16 windows of 4): windows 0, 1, 2 and 16 copy old window 0.
        let m16 = try inflatedQueryIndices(windowRows: 4, windowColumns: 4, queriesPerWindow: 4, repeat: 16)
        #expect(m16.count == 1024)
        for w in [0, 1, 2, 16] { #expect(Array(m16[(w * 4)..<(w * 4 + 4)]) == [0, 1, 2, 3], "window \(w)") }
        #expect(Array(m16[(4 * 4)..<(4 * 4 + 4)]) == [4, 5, 6, 7])  // window (0, 4) -> old window 1
        // 80to336 w4_q256 (8x8 windows of 4): windows 0, 1, 8 copy old window 0, window 2 old window 1.
        let m4 = try inflatedQueryIndices(windowRows: 4, windowColumns: 4, queriesPerWindow: 4, repeat: 4)
        for w in [0, 1, 8] { #expect(Array(m4[(w * 4)..<(w * 4 + 4)]) == [0, 1, 2, 3], "window \(w)") }
        #expect(Array(m4[8..<12]) == [4, 5, 6, 7])
        #expect(throws: TensorError.self) {
            try inflatedQueryIndices(windowRows: 1, windowColumns: 1, queriesPerWindow: 1, repeat: 8)
        }
    }

    // MARK: Inflation is duplication (reviewer test 7)

    @Test func inflatedWeightsAreBitIdenticalToTheirSource() throws {
        let trained = try trainedV1()
        let before = trained.namedParameters().map { ($0.0, $0.1.data.scalars) }
        let big = try ChainOfSight.inflate(trained, with: .res224to448_80to1296, grid: .square(32))
        // The trained connector is not modified.
        #expect(
            trained.namedParameters().map { ($0.0, $0.1.data.scalars) }.elementsEqual(before) { $0 == $1 })
        #expect(big.config.scales.map(\.queries) == [16, 256, 1024])
        let sources = [0, 0, 1]
        for (i, c) in sources.enumerated() {
            for l in 0..<2 {
                let a = trained.blocks[l][c], b = big.blocks[l][i]
                for (x, y) in zip([a.attn, a.mlp, a.ln] as [Module], [b.attn, b.mlp, b.ln] as [Module]) {
                    for ((n1, p1), (n2, p2)) in zip(x.namedParameters(), y.namedParameters()) {
                        #expect(n1 == n2 && p1.data.scalars == p2.data.scalars, "scale \(i) level \(l) \(n1)")
                    }
                }
            }
        }
        #expect(big.lnOut.weight!.data.scalars == trained.lnOut.weight!.data.scalars)
        #expect(big.outProj.weight.data.scalars == trained.outProj.weight.data.scalars)
        #expect(big.outProj.bias!.data.scalars == trained.outProj.bias!.data.scalars)
        // Scale 1: the 16 global queries tiled over 16 windows.
        let global = rows(trained.queries[0]), s1 = rows(big.queries[1])
        for w in 0..<16 { #expect(Array(s1[(w * 16)..<(w * 16 + 16)]) == global, "window \(w)") }
        // Scale 2: each old local window's 4 queries repeated over its 4x4 children.
        let local = rows(trained.queries[1]), s2 = rows(big.queries[2])
        for y in 0..<16 {
            for x in 0..<16 {
                let parent = (y / 4) * 4 + x / 4, w = y * 16 + x
                #expect(Array(s2[(w * 4)..<(w * 4 + 4)]) == Array(local[(parent * 4)..<(parent * 4 + 4)]))
            }
        }
        // New names follow the new window and query sizes.
        let names = big.namedParameters().map(\.0)
        #expect(names.contains("cls_token_w8_q256") && names.contains("attn_0_w2_l2_q1024.to_kv.weight"))
    }

    // MARK: Identity and resolution scaling (reviewer tests 8, 9, 10)

    @Test func identityExtensionReproducesOutputsBitExactly() throws {
        let trained = try trainedV1()
        let same = try ChainOfSight.inflate(trained, with: .identity(scales: 2), grid: .square(16))
        let grid = Grid.square(16)
        let levels = [
            FeatureLevel(features(2, grid, 8, seed: 3), grid: grid),
            FeatureLevel(features(2, grid, 8, seed: 4), grid: grid),
        ]
        #expect(try same(levels).scalars == trained(levels).scalars)
        #expect(same.namedParameters().map(\.0) == trained.namedParameters().map(\.0))
    }

    /// `[B, H*W, C]` nearest-upsampled 2x on the grid.
    func upsample2x(_ x: Tensor, grid: Grid) throws -> Tensor {
        let map = try x.reshaped([x.shape[0], grid.height, grid.width, x.shape[2]]).permuted([0, 3, 1, 2])
        let up = try interpolate(map, scaleFactor: (2, 2), mode: .nearest)
        return try up.permuted([0, 2, 3, 1]).reshaped([x.shape[0], grid.count * 4, x.shape[2]])
    }

    @Test func resolutionScalingOnAnUpsampledMapGivesTheSameTokens() throws {
        let trained = try trainedV1()
        let big = try ChainOfSight.inflate(trained, with: .res224to448_80to80, grid: .square(32))
        let grid = Grid.square(16), grid2 = Grid.square(32)
        let a = features(1, grid, 8, seed: 5), b = features(1, grid, 8, seed: 6)
        let y = try trained([FeatureLevel(a, grid: grid), FeatureLevel(b, grid: grid)])
        let y2 = try big([
            FeatureLevel(upsample2x(a, grid: grid), grid: grid2),
            FeatureLevel(upsample2x(b, grid: grid), grid: grid2),
        ])
        #expect(y2.shape == y.shape)
        let err = relativeError(y2.scalars, y.scalars)
        #expect(err < 1e-5, "relative error \(err)")
    }

    @Test func constantImageTokensAreTheOriginalsDuplicated() throws {
        let trained = try trainedV1()
        let big = try ChainOfSight.inflate(trained, with: .res224to448_80to1296, grid: .square(32))
        let v = randomTensor([1, 1, 8], seed: 7)
        let small = try trained.scaleTokens([
            FeatureLevel(v.expand([1, 256, 8]), grid: .square(16)),
            FeatureLevel(v.expand([1, 256, 8]) * 2, grid: .square(16)),
        ])
        let large = try big.scaleTokens([
            FeatureLevel(v.expand([1, 1024, 8]), grid: .square(32)),
            FeatureLevel(v.expand([1, 1024, 8]) * 2, grid: .square(32)),
        ])
        let g = tokenRows(small[0]), l = tokenRows(small[1])
        var worst = 0.0
        func check(_ a: [Float], _ b: [Float]) { worst = max(worst, relativeError(a, b)) }
        for (x, y) in zip(tokenRows(large[0]), g) { check(x, y) }
        for (n, row) in tokenRows(large[1]).enumerated() { check(row, g[n % 16]) }
        let idx = try inflatedQueryIndices(windowRows: 4, windowColumns: 4, queriesPerWindow: 4, repeat: 16)
        for (n, row) in tokenRows(large[2]).enumerated() { check(row, l[idx[n]]) }
        #expect(worst < 1e-5, "worst relative error \(worst)")
    }

    // MARK: Parity with the PyTorch inflation

    @Test func matchesPyTorchInflation() throws {
        let f = try loadFixtureCase("cos_inflate", group: "bridges")
        let scales = try numberLists(f, "scales").map {
            WindowScale(windowSize: Int($0[0]), queries: Int($0[1]))
        }
        let config = ChainOfSightConfig(
            visionDim: try f.int("visionDim"), dim: try f.int("dim"), llmDim: try f.int("llmDim"),
            headDim: try f.int("headDim"),
            mlpRatio: try f.int("mlpRatio"), grid: .square(try f.int("side")), scales: scales,
            featureLevels: try f.intArray("featureLevels"))
        let trained = try ChainOfSight(config)
        try loadWeights(trained, from: f)
        let spec = ChainOfSightExtension(
            name: "fixture",
            newScales: try numberLists(f, "extension").map {
                ScaleExtension(source: Int($0[0]), windowRatio: $0[1], queryRepeat: Int($0[2]))
            })
        let grid = Grid.square(try f.int("newSide"))
        let big = try ChainOfSight.inflate(trained, with: spec, grid: grid)
        #expect(big.namedParameters().map(\.0) == (try stringList(f, "inflatedStateDict")))
        let y = try big([FeatureLevel(f.tensor("x0"), grid: grid), FeatureLevel(f.tensor("x1"), grid: grid)])
        let err = relativeError(y.scalars, try f.tensor("out").scalars)
        #expect(y.shape == (try f.tensor("out")).shape)
        #expect(err < 1e-4, "relative error \(err)")
    }
}
