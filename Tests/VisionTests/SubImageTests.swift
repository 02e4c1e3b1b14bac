import Foundation
import SightlineTestSupport
import Tensor
import Testing
import Vision

@Suite struct SubImageTests {
    func ramp(_ shape: [Int], seed: UInt64 = 3) -> Tensor {
        var g = RandomGenerator(seed: seed)
        return Tensor.uniform(shape, low: 0, high: 1, generator: &g)
    }

    func region(_ x: Tensor, rows: Range<Int>, cols: Range<Int>) throws -> Tensor {
        try x.narrow(axis: 1, start: rows.lowerBound, length: rows.count).narrow(
            axis: 2, start: cols.lowerBound, length: cols.count)
    }

    @Test func mm1CutsA1344ImageIntoOverviewAndFourExactCrops() throws {
        let image = ramp([3, 1344, 1344])
        let d = SubImageDecomposition.mm1
        let subs = try d.decompose(image)
        #expect(subs.shape == [5, 3, 672, 672])
        #expect(d.count == 5)
        // ViT-L/14 at 672: 48 x 48 patches per sub-image; a 144-token connector gives 720.
        #expect(d.tokenCount(tokensPerSubImage: 48 * 48) == 11520)
        #expect(d.tokenCount(tokensPerSubImage: 144) == 720)
        // Crops tile the image exactly: crop (i, j) is rows [672 i, 672 (i+1)), columns [672 j, 672 (j+1)).
        for (k, (i, j)) in [(0, 0), (0, 1), (1, 0), (1, 1)].enumerated() {
            let crop = try subs.narrow(axis: 0, start: 1 + k, length: 1).squeezed(0)
            let expected = try region(
                image, rows: (672 * i)..<(672 * (i + 1)), cols: (672 * j)..<(672 * (j + 1)))
            #expect(crop.scalars == expected.scalars, "crop \(k)")
        }
        // The overview (first) is the whole image downsized.
        let overview = try subs.narrow(axis: 0, start: 0, length: 1)
        let expected = try interpolate(image.unsqueezed(0), size: (672, 672), mode: .bicubic, antialias: true)
        #expect(overview.scalars == expected.scalars)
    }

    @Test func largerSquareImagesAreShrunkToTheGridFirst() throws {
        let d = SubImageDecomposition(cropSize: 8, rows: 2, cols: 2)  // 1792 : 1344 scaled down to 21 : 16
        let image = ramp([3, 21, 21])
        let subs = try d.decompose(image)
        #expect(subs.shape == [5, 3, 8, 8])
        let full = try interpolate(image.unsqueezed(0), size: (16, 16), mode: .bicubic, antialias: true)
            .squeezed(0)
        let crop3 = try subs.narrow(axis: 0, start: 4, length: 1).squeezed(0)
        #expect(crop3.scalars == (try region(full, rows: 8..<16, cols: 8..<16)).scalars)
    }

    @Test func nonSquareImagesArePaddedCentredWithTheFill() throws {
        // 10 wide x 7 high (as 1000 x 700): padded to 10 x 10 with the top pad (10 - 7) / 2 = 1 row.
        let d = SubImageDecomposition(cropSize: 5, rows: 2, cols: 2, fill: [0.25, 0.5, 0.75])
        let image = ramp([3, 7, 10])
        let subs = try d.decompose(image)
        #expect(subs.shape == [5, 3, 5, 5])
        // The padded square is exactly 2 x 5: crops are cut from it without resizing.
        let tl = try subs.narrow(axis: 0, start: 1, length: 1).squeezed(0).scalars  // rows 0..<5 of the padded image
        // Row 0 is padding: each channel's fill.
        for ch in 0..<3 {
            for col in 0..<5 { #expect(tl[ch * 25 + col] == [0.25, 0.5, 0.75][ch]) }
        }
        // Row 1 of the padded image is row 0 of the input.
        let input = image.scalars
        for ch in 0..<3 {
            for col in 0..<5 { #expect(tl[ch * 25 + 5 + col] == input[ch * 70 + col]) }
        }
        // The bottom-right crop holds input rows 4...6 then two fill rows (3 = 10 - 7 - 1 pad rows below).
        let br = try subs.narrow(axis: 0, start: 4, length: 1).squeezed(0).scalars
        #expect(br[0 * 25 + 0 * 5 + 0] == input[0 * 70 + 4 * 10 + 5])
        #expect(br[2 * 25 + 4 * 5 + 4] == 0.75)
        // Stretching instead keeps no fill and changes the aspect ratio.
        var stretch = d
        stretch.fit = .stretch
        let s = try stretch.decompose(image)
        let expected = try interpolate(image.unsqueezed(0), size: (10, 10), mode: .bicubic, antialias: true)
            .squeezed(0)
        #expect(
            try s.narrow(axis: 0, start: 1, length: 1).squeezed(0).scalars
                == region(expected, rows: 0..<5, cols: 0..<5).scalars)
    }

    @Test func configurableGridWithoutOverviewAndBatches() throws {
        let d = SubImageDecomposition(cropSize: 4, rows: 3, cols: 2, overview: false, fit: .stretch)
        let batch = ramp([2, 3, 12, 8])
        let subs = try d.decompose(batch)
        #expect(d.count == 6)
        #expect(subs.shape == [12, 3, 4, 4])
        // Image 1, crop (2, 1) is at index 1 * 6 + 2 * 2 + 1.
        let image1 = try batch.narrow(axis: 0, start: 1, length: 1).squeezed(0)
        let got = try subs.narrow(axis: 0, start: 6 + 5, length: 1).squeezed(0)
        #expect(got.scalars == (try region(image1, rows: 8..<12, cols: 4..<8)).scalars)
        #expect(throws: VisionError.self) { try SubImageDecomposition(cropSize: 0).decompose(batch) }
        #expect(throws: VisionError.self) { try d.decompose(Tensor.zeros([3, 4])) }
    }

    @Test func towerEncodesEachSubImageAndTokensConcatenateInOrder() throws {
        let model = try VisionFixtures.clipModel()
        let d = SubImageDecomposition(cropSize: 32)  // the fixture tower's native size
        let image = ramp([3, 64, 64])
        let subs = try d.decompose(image)
        let f = try model.features(subs)
        #expect(f.levels[0].shape == [5, 64, 32])
        let merged = try d.mergeTokens(f.levels[0])
        #expect(merged.shape == [1, 320, 32])
        // The overview's tokens come first and equal encoding the overview alone.
        let alone = try model.features(subs.narrow(axis: 0, start: 0, length: 1)).levels[0]
        #expect(relError(try merged.narrow(axis: 1, start: 0, length: 64), alone) <= 1e-6)
        // The bottom-right crop's tokens come last.
        let last = try model.features(subs.narrow(axis: 0, start: 4, length: 1)).levels[0]
        #expect(relError(try merged.narrow(axis: 1, start: 256, length: 64), last) <= 1e-6)
        #expect(throws: VisionError.self) { try d.mergeTokens(Tensor.zeros([4, 2, 2])) }
    }
}
