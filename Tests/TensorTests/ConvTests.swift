import Foundation
import SightlineTestSupport
import Tensor
import Testing

// Convolution, pooling and interpolation: finite-difference gradients, CPU vs reference backend,
// hand-computed cases of PyTorch's rules, and error cases.

/// A deterministic input whose values are a permutation of 0.05 * (0 ..< n) - offset: all distinct
/// and at least 0.05 apart, so a max-pool argmax does not move under the gradient check's +-0.01.
private func distinctTensor(_ shape: [Int], offset: Float = 1) -> Tensor {
    let n = shape.reduce(1, *)
    var stride = 37
    while gcd(stride, n) != 1 { stride += 2 }
    return try! Tensor(shape: shape, scalars: (0..<n).map { Float(($0 * stride) % n) * 0.05 - offset })
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

private func close(_ a: [Float], _ b: [Double], tol: Double = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) <= tol * max(1, abs($1)) }
}

// MARK: - Convolution

struct ConvCase: Sendable, CustomStringConvertible {
    var name: String
    var n = 1, c = 2, h = 5, w = 5, o = 3, kh = 3, kw = 3
    var stride = (1, 1), padding = (0, 0), dilation = (1, 1), groups = 1
    var bias = true

    var description: String { name }
    var xShape: [Int] { [n, c, h, w] }
    var wShape: [Int] { [o, c / groups, kh, kw] }

    func inputs(seed: UInt64) -> [Tensor] {
        var t = [randomTensor(xShape, seed: seed), randomTensor(wShape, seed: seed + 1)]
        if bias { t.append(randomTensor([o], seed: seed + 2)) }
        return t
    }

    func apply(_ t: [Tensor]) throws -> Tensor {
        try conv2d(
            t[0], weight: t[1], bias: bias ? t[2] : nil, stride: stride, padding: padding, dilation: dilation,
            groups: groups)
    }

    static let all: [ConvCase] = [
        ConvCase(name: "plain 3x3 with bias", n: 2, c: 3, h: 6, w: 5, o: 4),
        ConvCase(name: "plain 3x3 without bias", n: 1, c: 2, h: 5, w: 6, o: 3, bias: false),
        ConvCase(
            name: "stride 2, padding 1, 3x2 kernel", n: 2, c: 2, h: 7, w: 6, o: 3, kh: 3, kw: 2,
            stride: (2, 2), padding: (1, 1)),
        ConvCase(
            name: "stride (2, 1), padding (0, 2), no bias", n: 1, c: 3, h: 6, w: 4, o: 2, stride: (2, 1),
            padding: (0, 2), bias: false),
        ConvCase(
            name: "dilation (2, 1), padding (2, 1)", n: 1, c: 2, h: 7, w: 7, o: 2, padding: (2, 1),
            dilation: (2, 1)),
        ConvCase(
            name: "dilation 2, stride 2, no bias", n: 2, c: 1, h: 9, w: 8, o: 2, stride: (2, 2),
            padding: (1, 0), dilation: (2, 2), bias: false),
        ConvCase(name: "groups 2", n: 2, c: 4, h: 5, w: 5, o: 6, padding: (1, 1), groups: 2),
        ConvCase(
            name: "groups 2, stride 2, no bias", n: 1, c: 4, h: 6, w: 7, o: 4, stride: (2, 2),
            padding: (1, 1), groups: 2, bias: false),
        ConvCase(name: "depthwise", n: 2, c: 3, h: 6, w: 6, o: 3, padding: (1, 1), groups: 3),
        ConvCase(
            name: "depthwise, multiplier 2, stride 2", n: 1, c: 2, h: 7, w: 7, o: 4, stride: (2, 2),
            padding: (1, 1), groups: 2, bias: false),
        ConvCase(
            name: "depthwise 5x5, dilation 2", n: 1, c: 3, h: 8, w: 9, o: 3, kh: 5, kw: 5, padding: (4, 2),
            dilation: (2, 1), groups: 3),
        ConvCase(name: "pointwise 1x1", n: 2, c: 4, h: 3, w: 3, o: 5, kh: 1, kw: 1),
        ConvCase(
            name: "pointwise 1x1, groups 2, no bias", n: 2, c: 4, h: 3, w: 2, o: 2, kh: 1, kw: 1, groups: 2,
            bias: false),
        ConvCase(
            name: "patch embedding (kernel = stride)", n: 2, c: 3, h: 8, w: 8, o: 4, kh: 4, kw: 4,
            stride: (4, 4)),
    ]
}

@Suite struct ConvConvolutionTests {
    @Test(arguments: ConvCase.all)
    func gradientsMatchFiniteDifferences(_ c: ConvCase) throws {
        let result = try gradCheck(c.inputs(seed: 3)) { try c.apply($0) }
        #expect(result.passed, "\(c): \(result)")
    }

    @Test(arguments: ConvCase.all)
    func cpuMatchesReference(_ c: ConvCase) throws {
        let err = try backendDisagreement(c.inputs(seed: 5)) { try c.apply($0) }
        #expect(err.output <= 1e-5, "\(c): output \(err.output)")
        #expect(err.gradient <= 1e-5, "\(c): gradient \(err.gradient)")
    }

    @Test(arguments: [
        // 8 * 9 * 96 * 96 column floats per image: the 7 images need two chunks (one GEMM per image).
        ConvCase(name: "two chunks of large images", n: 7, c: 8, h: 96, w: 96, o: 3, padding: (1, 1)),
        // 64 * 9 * 15 * 15 per image: 33 small images need two chunks (one GEMM per chunk).
        ConvCase(
            name: "two chunks of small images", n: 33, c: 64, h: 15, w: 15, o: 2, padding: (1, 1), bias: false
        ),
    ])
    func batchesLargerThanOneColumnChunkMatchReference(_ c: ConvCase) throws {
        // The weight gradient accumulates across chunks.
        let err = try backendDisagreement(c.inputs(seed: 9)) { try c.apply($0) }
        #expect(err.output <= 1e-5, "\(c): output \(err.output)")
        #expect(err.gradient <= 1e-5, "\(c): gradient \(err.gradient)")
    }

    @Test func handComputedSums() throws {
        // x = 1...9 as 3x3, a 2x2 kernel of ones: each output is the sum of a 2x2 window.
        let x = try Tensor(shape: [1, 1, 3, 3], scalars: (1...9).map(Float.init))
        let w = Tensor.ones([1, 1, 2, 2])
        #expect(try conv2d(x, weight: w).scalars == [12, 16, 24, 28])
        // Padding 1, stride 2: windows start at -1 and 1; zeros outside.
        let y = try conv2d(x, weight: w, bias: Tensor([0.5]), stride: (2, 2), padding: (1, 1))
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.scalars == [1.5, 5.5, 11.5, 28.5])
        // Dilation 2 on a 3x3 kernel covers the corners of a 5x5 input only.
        let x5 = try Tensor(shape: [1, 1, 5, 5], scalars: (0..<25).map(Float.init))
        let w3 = try Tensor(shape: [1, 1, 3, 3], scalars: [1, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(try conv2d(x5, weight: w3, dilation: (2, 2)).scalars == [0 + 24])
    }

    @Test func depthwiseEqualsPerChannelConvolutions() throws {
        let x = randomTensor([2, 3, 6, 5], seed: 21)
        let w = randomTensor([3, 1, 3, 3], seed: 22)
        let y = try conv2d(x, weight: w, stride: (2, 1), padding: (1, 1), groups: 3)
        for ch in 0..<3 {
            let xc = try x.narrow(axis: 1, start: ch, length: 1)
            let wc = try w.narrow(axis: 0, start: ch, length: 1)
            let yc = try conv2d(xc, weight: wc, stride: (2, 1), padding: (1, 1))
            #expect(
                relativeError(try y.narrow(axis: 1, start: ch, length: 1).scalars, yc.scalars) < 1e-6,
                "channel \(ch)")
        }
    }

    @Test func onlyTheRecordedInputsGetGradients() throws {
        let x = randomTensor([1, 2, 4, 4], seed: 31)
        let w = Parameter(randomTensor([3, 2, 3, 3], seed: 32))
        let b = Parameter(randomTensor([3], seed: 33))
        let (_, grads) = try valueAndGradient(at: [("w", w), ("b", b)]) {
            try conv2d(x, weight: w.value, bias: b.value, padding: (1, 1)).sum()
        }
        // d/db of sum over N, H, W is the number of output positions.
        #expect(grads["b"]?.scalars == [16, 16, 16])
        #expect(grads["w"]?.shape == [3, 2, 3, 3])
    }

    @Test func errorsNameTheShapes() throws {
        let x = randomTensor([1, 3, 5, 5], seed: 1)
        let wrongChannels = #expect(throws: TensorError.self) {
            try conv2d(x, weight: Tensor.zeros([4, 2, 3, 3]))
        }
        #expect(wrongChannels?.op == "conv2d")
        #expect(wrongChannels?.message.contains("[1, 3, 5, 5]") == true)
        #expect(wrongChannels?.message.contains("[4, 2, 3, 3]") == true)
        // 6 output channels in 4 groups; 3 input channels in 2 groups.
        let x4 = randomTensor([1, 4, 5, 5], seed: 2)
        let badOut = #expect(throws: TensorError.self) {
            try conv2d(x4, weight: Tensor.zeros([6, 1, 3, 3]), groups: 4)
        }
        #expect(badOut?.message.contains("groups = 4") == true)
        #expect(throws: TensorError.self) { try conv2d(x, weight: Tensor.zeros([4, 1, 3, 3]), groups: 2) }
        // A kernel larger than the (padded) input.
        let small = randomTensor([1, 1, 2, 2], seed: 3)
        let tooBig = #expect(throws: TensorError.self) {
            try conv2d(small, weight: Tensor.zeros([1, 1, 3, 3]))
        }
        #expect(tooBig?.message.contains("[1, 1, 2, 2]") == true)
        #expect(
            try conv2d(small, weight: Tensor.zeros([1, 1, 3, 3]), padding: (1, 1)).shape == [1, 1, 2, 2])
        #expect(throws: TensorError.self) {
            try conv2d(small, weight: Tensor.zeros([1, 1, 2, 2]), dilation: (3, 1))
        }
        // Bias, ranks, hyper-parameters.
        #expect(throws: TensorError.self) {
            try conv2d(x, weight: Tensor.zeros([2, 3, 1, 1]), bias: Tensor.zeros([3]))
        }
        #expect(throws: TensorError.self) {
            try conv2d(Tensor.zeros([3, 5, 5]), weight: Tensor.zeros([2, 3, 1, 1]))
        }
        #expect(throws: TensorError.self) {
            try conv2d(x, weight: Tensor.zeros([2, 3, 1, 1]), stride: (0, 1))
        }
        #expect(throws: TensorError.self) {
            try conv2d(x, weight: Tensor.zeros([2, 3, 1, 1]), padding: (-1, 0))
        }
    }
}

// MARK: - Pooling

struct PoolCase: Sendable, CustomStringConvertible {
    var name: String
    var shape: [Int]
    var kernel: (Int, Int)
    var stride: (Int, Int)? = nil
    var padding = (0, 0)
    var dilation = (1, 1)
    var ceilMode = false
    var countIncludePad = true
    var description: String { name }

    static let max: [PoolCase] = [
        PoolCase(name: "2x2 default stride", shape: [2, 2, 6, 6], kernel: (2, 2)),
        PoolCase(
            name: "3x3 stride 2 padding 1", shape: [1, 2, 7, 6], kernel: (3, 3), stride: (2, 2),
            padding: (1, 1)),
        PoolCase(
            name: "3x3 stride 2 padding 1 ceil", shape: [1, 2, 6, 6], kernel: (3, 3), stride: (2, 2),
            padding: (1, 1), ceilMode: true),
        PoolCase(name: "2x2 stride 2 ceil, odd sizes", shape: [1, 1, 5, 7], kernel: (2, 2), ceilMode: true),
        PoolCase(
            name: "dilation 2", shape: [1, 2, 7, 7], kernel: (3, 2), stride: (1, 2), padding: (1, 1),
            dilation: (2, 2)),
        PoolCase(
            name: "3x2 stride (1, 2) padding (1, 1) ceil", shape: [2, 1, 5, 6], kernel: (3, 2),
            stride: (1, 2), padding: (1, 1), ceilMode: true),
    ]

    static let avg: [PoolCase] = [
        PoolCase(name: "2x2 default stride", shape: [2, 2, 6, 6], kernel: (2, 2)),
        PoolCase(
            name: "3x3 stride 2 padding 1", shape: [1, 2, 7, 6], kernel: (3, 3), stride: (2, 2),
            padding: (1, 1)),
        PoolCase(
            name: "3x3 stride 2 padding 1, exclude pad", shape: [1, 2, 7, 6], kernel: (3, 3), stride: (2, 2),
            padding: (1, 1), countIncludePad: false),
        PoolCase(
            name: "3x3 stride 2 padding 1 ceil", shape: [1, 2, 6, 6], kernel: (3, 3), stride: (2, 2),
            padding: (1, 1), ceilMode: true),
        PoolCase(
            name: "3x3 stride 2 padding 1 ceil, exclude pad", shape: [1, 2, 6, 6], kernel: (3, 3),
            stride: (2, 2), padding: (1, 1), ceilMode: true, countIncludePad: false),
        PoolCase(
            name: "2x3 stride (2, 2) ceil", shape: [2, 1, 5, 7], kernel: (2, 3), stride: (2, 2),
            ceilMode: true),
    ]

    func maxPool(_ x: Tensor) throws -> Tensor {
        try maxPool2d(
            x, kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }

    func avgPool(_ x: Tensor) throws -> Tensor {
        try avgPool2d(
            x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode,
            countIncludePad: countIncludePad)
    }
}

@Suite struct ConvPoolingTests {
    @Test(arguments: PoolCase.max)
    func maxPoolGradientAndBackends(_ c: PoolCase) throws {
        let x = distinctTensor(c.shape)
        let result = try gradCheck([x]) { try c.maxPool($0[0]) }
        #expect(result.passed, "\(c): \(result)")
        let err = try backendDisagreement([x]) { try c.maxPool($0[0]) }
        #expect(err.output == 0 && err.gradient <= 1e-6, "\(c): \(err)")
    }

    @Test(arguments: PoolCase.avg)
    func avgPoolGradientAndBackends(_ c: PoolCase) throws {
        let x = randomTensor(c.shape, seed: 4)
        let result = try gradCheck([x]) { try c.avgPool($0[0]) }
        #expect(result.passed, "\(c): \(result)")
        let err = try backendDisagreement([x]) { try c.avgPool($0[0]) }
        #expect(err.output <= 1e-6 && err.gradient <= 1e-6, "\(c): \(err)")
    }

    @Test func maxPoolTiesGoToTheFirstElementOfEachWindow() throws {
        // A constant 3x3 plane, 3x3 windows with stride 1 and padding 1: each window's first valid
        // element (row-major, padding skipped) receives the gradient.
        for backend in [CPUBackend.shared, ReferenceBackend.shared] as [any Backend] {
            let g = try withBackend(backend) {
                try gradient(
                    of: { try maxPool2d($0[0], kernel: (3, 3), stride: (1, 1), padding: (1, 1)).sum() },
                    at: [Tensor.ones([1, 1, 3, 3])])
            }
            #expect(g[0].scalars == [4, 2, 0, 2, 1, 0, 0, 0, 0], "\(backend.name)")
        }
    }

    @Test func maxPoolPaddingNeverWins() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [-4, -3, -2, -1])
        let y = try maxPool2d(x, kernel: (2, 2), stride: (1, 1), padding: (1, 1))
        #expect(y.shape == [1, 1, 3, 3])
        #expect(y.scalars == [-4, -3, -3, -2, -1, -1, -2, -1, -1])
    }

    @Test func maxPoolPropagatesNaN() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [1, .nan, 3, 2])
        #expect(try maxPool2d(x, kernel: (2, 2)).scalars.first?.isNaN == true)
    }

    @Test func ceilModeOutputSizes() throws {
        // 5 wide, kernel 2, stride 2: floor gives 2 windows, ceil 3 (the last one half outside).
        let x = try Tensor(shape: [1, 1, 1, 5], scalars: [1, 2, 3, 4, 5])
        #expect(try maxPool2d(x, kernel: (1, 2)).shape == [1, 1, 1, 2])
        #expect(try maxPool2d(x, kernel: (1, 2), ceilMode: true).scalars == [2, 4, 5])
        // The ceil-mode window over only the last column divides by 1 (it hangs past the input).
        #expect(try avgPool2d(x, kernel: (1, 2), ceilMode: true).scalars == [1.5, 3.5, 5])
        // 5 wide, kernel 2, stride 3, padding 1: ceil would give 3 windows, but the third would
        // start at 6 >= 5 + 1 (inside the right padding only), so it is dropped.
        #expect(
            try maxPool2d(x, kernel: (1, 2), stride: (1, 3), padding: (0, 1), ceilMode: true).shape == [
                1, 1, 1, 2,
            ])
    }

    @Test func avgPoolDivisorRules() throws {
        let x = try Tensor(shape: [1, 1, 1, 3], scalars: [1, 2, 3])
        let inc = try avgPool2d(x, kernel: (1, 3), stride: (1, 1), padding: (0, 1))
        #expect(close(inc.scalars, [1, 2, 5.0 / 3]))
        let exc = try avgPool2d(x, kernel: (1, 3), stride: (1, 1), padding: (0, 1), countIncludePad: false)
        #expect(close(exc.scalars, [1.5, 2, 2.5]))
        // Ceil mode with padding: windows start at -1, 1, 3 over [1, 2, 3, 4] (+ one padding column
        // on each side); the last one ends past the padding, so counting padding divides by 2.
        let x4 = try Tensor(shape: [1, 1, 1, 4], scalars: [1, 2, 3, 4])
        let ceilInc = try avgPool2d(x4, kernel: (1, 3), stride: (1, 2), padding: (0, 1), ceilMode: true)
        #expect(close(ceilInc.scalars, [1, 3, 2]))
        let ceilExc = try avgPool2d(
            x4, kernel: (1, 3), stride: (1, 2), padding: (0, 1), ceilMode: true, countIncludePad: false)
        #expect(close(ceilExc.scalars, [1.5, 3, 4]))
    }

    @Test(arguments: [(5, 7, 3, 2), (16, 16, 12, 12), (10, 9, 4, 5), (3, 4, 6, 7), (6, 6, 1, 1)])
    func adaptiveAvgPoolGradientAndBackends(_ s: (Int, Int, Int, Int)) throws {
        let x = randomTensor([1, 2, s.0, s.1], seed: 6)
        let f = { (t: [Tensor]) in try adaptiveAvgPool2d(t[0], outputSize: (s.2, s.3)) }
        let result = try gradCheck([x], f)
        #expect(result.passed, "\(s): \(result)")
        let err = try backendDisagreement([x], f)
        #expect(err.output <= 1e-6 && err.gradient <= 1e-6, "\(s): \(err)")
    }

    @Test func adaptiveAvgPoolUsesOverlappingBins() throws {
        // 5 -> 3 rows: [0, 2), [1, 4), [3, 5); 7 -> 2 columns: [0, 4), [3, 7).
        let x = try Tensor(shape: [1, 1, 5, 7], scalars: (0..<35).map(Float.init))
        let rows = [0..<2, 1..<4, 3..<5], cols = [0..<4, 3..<7]
        var expected: [Double] = []
        for r in rows {
            for c in cols {
                var s = 0.0
                for i in r { for j in c { s += Double(i * 7 + j) } }
                expected.append(s / Double(r.count * c.count))
            }
        }
        #expect(close(try adaptiveAvgPool2d(x, outputSize: (3, 2)).scalars, expected))
        // Equal sizes are the identity; output 1x1 is the global mean.
        #expect(try adaptiveAvgPool2d(x, outputSize: (5, 7)).scalars == x.scalars)
        #expect(close(try adaptiveAvgPool2d(x, outputSize: (1, 1)).scalars, [17]))
    }

    @Test func poolingErrors() throws {
        let x = randomTensor([1, 1, 2, 2], seed: 1)
        let big = #expect(throws: TensorError.self) { try maxPool2d(x, kernel: (3, 3)) }
        #expect(big?.message.contains("[1, 1, 2, 2]") == true)
        #expect(throws: TensorError.self) { try avgPool2d(x, kernel: (3, 3)) }
        #expect(throws: TensorError.self) { try maxPool2d(x, kernel: (2, 2), padding: (2, 0)) }
        #expect(throws: TensorError.self) { try maxPool2d(x, kernel: (2, 2), stride: (0, 1)) }
        #expect(throws: TensorError.self) { try avgPool2d(Tensor.zeros([2, 2, 2]), kernel: (1, 1)) }
        #expect(throws: TensorError.self) { try adaptiveAvgPool2d(x, outputSize: (0, 1)) }
    }
}

// MARK: - Interpolation

struct InterpCase: Sendable, CustomStringConvertible {
    var mode: InterpolationMode
    var inSize: (Int, Int)
    var size: (Int, Int)? = nil
    var scale: (Double, Double)? = nil
    var alignCorners = false
    var antialias = false

    var description: String {
        let target = size.map { "size \($0)" } ?? "scale \(scale!)"
        return "\(mode) \(inSize) -> \(target)\(alignCorners ? " align" : "")\(antialias ? " aa" : "")"
    }

    func apply(_ x: Tensor) throws -> Tensor {
        try interpolate(
            x, size: size, scaleFactor: scale, mode: mode, alignCorners: alignCorners, antialias: antialias)
    }

    static let all: [InterpCase] = {
        var cases: [InterpCase] = [
            InterpCase(mode: .nearest, inSize: (4, 5), size: (7, 3)),
            InterpCase(mode: .nearest, inSize: (3, 4), scale: (2, 1.5)),
            InterpCase(mode: .nearest, inSize: (6, 5), scale: (0.5, 0.7)),
        ]
        for mode in [InterpolationMode.bilinear, .bicubic] {
            for aa in [false, true] {
                for ac in [false, true] {
                    cases.append(
                        InterpCase(mode: mode, inSize: (4, 5), size: (7, 9), alignCorners: ac, antialias: aa))
                    cases.append(
                        InterpCase(mode: mode, inSize: (9, 8), size: (4, 3), alignCorners: ac, antialias: aa))
                    cases.append(
                        InterpCase(
                            mode: mode, inSize: (5, 6), scale: (1.7, 0.6), alignCorners: ac, antialias: aa))
                }
                cases.append(InterpCase(mode: mode, inSize: (6, 4), size: (6, 7), antialias: aa))
                cases.append(InterpCase(mode: mode, inSize: (7, 7), scale: (0.45, 2.5), antialias: aa))
            }
        }
        return cases
    }()
}

/// Keys' cubic convolution kernel with parameter a, in Double (for hand checks).
private func keys(_ x: Double, _ a: Double) -> Double {
    let t = abs(x)
    if t <= 1 { return (a + 2) * t * t * t - (a + 3) * t * t + 1 }
    if t < 2 { return a * t * t * t - 5 * a * t * t + 8 * a * t - 4 * a }
    return 0
}

@Suite struct ConvInterpolationTests {
    @Test(arguments: InterpCase.all)
    func gradientAndBackends(_ c: InterpCase) throws {
        let x = randomTensor([2, 1, c.inSize.0, c.inSize.1], seed: 8)
        let result = try gradCheck([x]) { try c.apply($0[0]) }
        #expect(result.passed, "\(c): \(result)")
        let err = try backendDisagreement([x]) { try c.apply($0[0]) }
        #expect(err.output <= 1e-5 && err.gradient <= 1e-5, "\(c): \(err)")
    }

    @Test(arguments: InterpCase.all)
    func constantsStayConstant(_ c: InterpCase) throws {
        // Every mode's weights sum to 1 (antialias normalises them), so a constant image survives.
        let y = try c.apply(Tensor.full([1, 2, c.inSize.0, c.inSize.1], 0.75))
        #expect(y.scalars.allSatisfy { abs($0 - 0.75) < 1e-6 }, "\(c)")
    }

    @Test func bilinearAlignCornersGivesMidpoints() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4])
        let y = try interpolate(x, size: (3, 3), mode: .bilinear, alignCorners: true)
        #expect(close(y.scalars, [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4]))
    }

    @Test func bilinearPixelCentresClampAtTheBorders() throws {
        // 2 -> 4: source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (past the last pixel).
        let x = try Tensor(shape: [1, 1, 1, 2], scalars: [1, 2])
        #expect(close(try interpolate(x, size: (1, 4), mode: .bilinear).scalars, [1, 1.25, 1.75, 2]))
    }

    @Test func scaleFactorMapsCoordinatesByItsInverse() throws {
        // 3 -> floor(3 * 1.7) = 5 columns. With the size, step = 3 / 5; with the scale factor,
        // step = 1 / 1.7, so output 2 samples (2 + 0.5) / 1.7 - 0.5 instead of exactly 1.
        let x = try Tensor(shape: [1, 1, 1, 3], scalars: [0, 1, 2])
        let bySize = try interpolate(x, size: (1, 5), mode: .bilinear)
        let byScale = try interpolate(x, scaleFactor: (1, 1.7), mode: .bilinear)
        #expect(byScale.shape == [1, 1, 1, 5])
        #expect(close(bySize.scalars, [0, 0.4, 1, 1.6, 2]))
        let src = (0..<5).map { min(max((Double($0) + 0.5) / 1.7 - 0.5, 0), 2) }
        #expect(close(byScale.scalars, src))
    }

    @Test func nearestTakesTheFloorOfTheScaledIndex() throws {
        let x = try Tensor(shape: [1, 1, 1, 2], scalars: [7, 9])
        #expect(try interpolate(x, size: (1, 5), mode: .nearest).scalars == [7, 7, 7, 9, 9])
        #expect(try interpolate(x, scaleFactor: (1, 2), mode: .nearest).scalars == [7, 7, 9, 9])
        let x3 = try Tensor(shape: [1, 1, 1, 3], scalars: [1, 2, 3])
        #expect(try interpolate(x3, size: (1, 2), mode: .nearest).scalars == [1, 2])
    }

    @Test func bicubicMatchesKeysKernelWithClampedTaps() throws {
        // A ramp: 8 -> 16 columns, source coordinate (i + 0.5) / 2 - 0.5, fraction t; the taps
        // floor - 1 ... floor + 2 are clamped into the input and weighted by Keys(t + 1 - j), A = -0.75.
        let x = try Tensor(shape: [1, 1, 1, 8], scalars: (0..<8).map(Float.init))
        let y = try interpolate(x, size: (1, 16), mode: .bicubic).scalars
        for i in 0..<16 {
            let src = (Double(i) + 0.5) / 2 - 0.5
            let i0 = Int(src.rounded(.down)), t = src - Double(i0)
            var expected = 0.0
            for j in 0..<4 {
                let tap = min(max(i0 - 1 + j, 0), 7)
                expected += Double(tap) * keys(t + 1 - Double(j), -0.75)
            }
            #expect(abs(Double(y[i]) - expected) < 1e-5, "column \(i)")
        }
        // At column 0 the taps -2, -1, 0, 1 clamp to 0, 0, 0, 1: only the last weight sees a 1.
        #expect(abs(Double(y[0]) - keys(1.25, -0.75)) < 1e-6)
        // align_corners: 4 -> 7, step 0.5: whole coordinates take one pixel (weights 0, 1, 0, 0) and
        // the interior half-way point weighs its taps symmetrically, so the ramp comes back there.
        let x4 = try Tensor(shape: [1, 1, 1, 4], scalars: [0, 1, 2, 3])
        let y4 = try interpolate(x4, size: (1, 7), mode: .bicubic, alignCorners: true).scalars
        for i in [0, 2, 3, 4, 6] { #expect(abs(Double(y4[i]) - Double(i) * 0.5) < 1e-5, "align \(i)") }
    }

    @Test func antialiasedBilinearDownsamplingUsesAWidenedTriangle() throws {
        // 4 -> 2: scale 2, support 2, centres 1 and 3; normalised weights (3, 3, 1) / 7 and (1, 3, 3) / 7.
        let x = try Tensor(shape: [1, 1, 1, 4], scalars: [1, 2, 4, 8])
        let y = try interpolate(x, size: (1, 2), mode: .bilinear, antialias: true)
        let expected: [Double] = [13.0 / 7, 38.0 / 7]  // (3*1 + 3*2 + 1*4) / 7, (1*2 + 3*4 + 3*8) / 7
        #expect(close(y.scalars, expected))
        // Without antialias the same resize samples at 0.5 and 2.5.
        #expect(close(try interpolate(x, size: (1, 2), mode: .bilinear).scalars, [1.5, 6]))
    }

    @Test func antialiasedBicubicUsesKeysHalf() throws {
        // 4 -> 2 with A = -0.5 over support 4: distances (j + 0.5 - centre) / 2.
        let xs: [Double] = [1, -2, 4, 3]
        let x = try Tensor(shape: [1, 1, 1, 4], xs)
        let y = try interpolate(x, size: (1, 2), mode: .bicubic, antialias: true)
        var expected: [Double] = []
        for centre in [1.0, 3.0] {
            let w = (0..<4).map { keys((Double($0) + 0.5 - centre) / 2, -0.5) }
            let total = w.reduce(0, +)
            expected.append(zip(w, xs).reduce(0) { $0 + $1.0 * $1.1 } / total)
        }
        #expect(close(y.scalars, expected))
    }

    @Test func antialiasedBilinearUpsamplingEqualsPlainBilinear() throws {
        // Upsampling keeps the triangle's support at 1: the same weights as plain bilinear.
        let x = randomTensor([1, 2, 4, 5], seed: 12)
        let aa = try interpolate(x, size: (8, 10), mode: .bilinear, antialias: true)
        let plain = try interpolate(x, size: (8, 10), mode: .bilinear)
        #expect(relativeError(aa.scalars, plain.scalars) < 1e-6)
    }

    @Test func interpolationErrors() throws {
        let x = randomTensor([1, 1, 4, 4], seed: 1)
        #expect(throws: TensorError.self) { try interpolate(x, mode: .bilinear) }
        #expect(throws: TensorError.self) {
            try interpolate(x, size: (2, 2), scaleFactor: (2, 2), mode: .bilinear)
        }
        #expect(throws: TensorError.self) {
            try interpolate(x, size: (2, 2), mode: .nearest, alignCorners: true)
        }
        #expect(throws: TensorError.self) {
            try interpolate(x, size: (2, 2), mode: .nearest, antialias: true)
        }
        #expect(throws: TensorError.self) { try interpolate(x, scaleFactor: (0.1, 1), mode: .bilinear) }
        #expect(throws: TensorError.self) {
            try interpolate(Tensor.zeros([4, 4]), size: (2, 2), mode: .bilinear)
        }
    }
}
