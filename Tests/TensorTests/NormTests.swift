import SightlineTestSupport
import Tensor
import Testing

/// Normalisation written with basic tensor ops (mean, variance, rsqrt): an independent oracle.
private func composedNorm(_ x: Tensor, axes: [Int], eps: Float, rms: Bool = false) throws -> Tensor {
    if rms { return try x * ((x * x).mean(axes: axes, keepDim: true) + eps).rsqrt() }
    let mean = try x.mean(axes: axes, keepDim: true)
    let variance = try x.variance(axes: axes, correction: 0, keepDim: true)
    return try (x - mean) * (variance + eps).rsqrt()
}

/// Largest relative error between the gradients of sum(f(x) * r) and sum(g(x) * r).
private func gradientDisagreement(
    _ inputs: [Tensor], _ f: ([Tensor]) throws -> Tensor, _ g: ([Tensor]) throws -> Tensor
) throws -> Double {
    let r = randomTensor(try noGrad { try f(inputs) }.shape, seed: 99)
    let a = try gradient(of: { try (f($0) * r).sum() }, at: inputs)
    let b = try gradient(of: { try (g($0) * r).sum() }, at: inputs)
    return zip(a, b).map { relativeError($0.scalars, $1.scalars) }.max() ?? 0
}

@Suite struct NormTests {
    // MARK: Layer norm

    @Test func layerNormMatchesComposedOps() throws {
        let x = randomTensor([3, 4, 5], seed: 1, low: -2, high: 3)
        let w = randomTensor([4, 5], seed: 2), b = randomTensor([4, 5], seed: 3)
        let y = try layerNorm(x, normalizedShape: [4, 5], weight: w, bias: b)
        let ref = try composedNorm(x, axes: [1, 2], eps: 1e-5) * w + b
        #expect(y.shape == [3, 4, 5])
        #expect(relativeError(y.scalars, ref.scalars) < 1e-5)
        let y1 = try layerNorm(x, normalizedShape: [5])
        #expect(relativeError(y1.scalars, try composedNorm(x, axes: [2], eps: 1e-5).scalars) < 1e-5)
        let g = try gradientDisagreement([x, w, b]) {
            try layerNorm($0[0], normalizedShape: [4, 5], weight: $0[1], bias: $0[2])
        } _: {
            try composedNorm($0[0], axes: [1, 2], eps: 1e-5) * $0[1] + $0[2]
        }
        #expect(g < 1e-4)
    }

    @Test func layerNormGradCheck() throws {
        let x = randomTensor([3, 6], seed: 4)
        let w = randomTensor([6], seed: 5, low: 0.5, high: 1.5), b = randomTensor([6], seed: 6)
        let full = try gradCheck([x, w, b]) {
            try layerNorm($0[0], normalizedShape: [6], weight: $0[1], bias: $0[2])
        }
        #expect(full.passed, "\(full)")
        let plain = try gradCheck([x]) { try layerNorm($0[0], normalizedShape: [6]) }
        #expect(plain.passed, "\(plain)")
        let weightOnly = try gradCheck([x, w]) { try layerNorm($0[0], normalizedShape: [6], weight: $0[1]) }
        #expect(weightOnly.passed, "\(weightOnly)")
        let x2 = randomTensor([2, 2, 3], seed: 7), w2 = randomTensor([2, 3], seed: 8),
            b2 = randomTensor([2, 3], seed: 9)
        let multi = try gradCheck([x2, w2, b2]) {
            try layerNorm($0[0], normalizedShape: [2, 3], weight: $0[1], bias: $0[2])
        }
        #expect(multi.passed, "\(multi)")
    }

    @Test func layerNormCPUMatchesReference() throws {
        // 37 features (SIMD body and tail), 150 rows (several chunks of the dweight reduction).
        let x = randomTensor([150, 37], seed: 10, low: -3, high: 2)
        let w = randomTensor([37], seed: 11), b = randomTensor([37], seed: 12)
        let d = try backendDisagreement([x, w, b]) {
            try layerNorm($0[0], normalizedShape: [37], weight: $0[1], bias: $0[2])
        }
        #expect(d.output < 1e-5, "\(d)")
        #expect(d.gradient < 1e-4, "\(d)")
        let d2 = try backendDisagreement([x]) { try layerNorm($0[0], normalizedShape: [37]) }
        #expect(d2.output < 1e-5 && d2.gradient < 1e-4, "\(d2)")
    }

    // MARK: RMS norm

    @Test func rmsNormMatchesComposedOps() throws {
        let x = randomTensor([2, 3, 8], seed: 13)
        let w = randomTensor([8], seed: 14)
        let y = try rmsNorm(x, weight: w)
        let ref = try composedNorm(x, axes: [2], eps: 1e-6, rms: true) * w
        #expect(relativeError(y.scalars, ref.scalars) < 1e-5)
        let y2 = try rmsNorm(x, eps: 0.5)
        #expect(relativeError(y2.scalars, try composedNorm(x, axes: [2], eps: 0.5, rms: true).scalars) < 1e-5)
        let g = try gradientDisagreement([x, w]) {
            try rmsNorm($0[0], weight: $0[1])
        } _: {
            try composedNorm($0[0], axes: [2], eps: 1e-6, rms: true) * $0[1]
        }
        #expect(g < 1e-4)
    }

    @Test func rmsNormGradCheck() throws {
        let x = randomTensor([3, 5], seed: 15)
        let w = randomTensor([5], seed: 16, low: 0.5, high: 1.5)
        let withWeight = try gradCheck([x, w]) { try rmsNorm($0[0], weight: $0[1]) }
        #expect(withWeight.passed, "\(withWeight)")
        let plain = try gradCheck([x]) { try rmsNorm($0[0]) }
        #expect(plain.passed, "\(plain)")
    }

    @Test func rmsNormCPUMatchesReference() throws {
        let x = randomTensor([130, 41], seed: 17)
        let w = randomTensor([41], seed: 18)
        let d = try backendDisagreement([x, w]) { try rmsNorm($0[0], weight: $0[1]) }
        #expect(d.output < 1e-5, "\(d)")
        #expect(d.gradient < 1e-4, "\(d)")
    }

    // MARK: Group norm

    @Test func groupNormMatchesComposedOps() throws {
        let x = randomTensor([2, 6, 3, 2], seed: 19, low: -1, high: 2)
        let w = randomTensor([6], seed: 20), b = randomTensor([6], seed: 21)
        let y = try groupNorm(x, groups: 3, weight: w, bias: b)
        let grouped = try composedNorm(x.reshaped([2, 3, 12]), axes: [2], eps: 1e-5).reshaped([2, 6, 3, 2])
        let ref = try grouped * w.reshaped([1, 6, 1, 1]) + b.reshaped([1, 6, 1, 1])
        #expect(relativeError(y.scalars, ref.scalars) < 1e-5)
        // One group per channel is instance norm; one group is layer norm over (C, H, W).
        let inst = try groupNorm(x, groups: 6)
        #expect(relativeError(inst.scalars, try composedNorm(x, axes: [2, 3], eps: 1e-5).scalars) < 1e-5)
        let one = try groupNorm(x, groups: 1)
        #expect(relativeError(one.scalars, try composedNorm(x, axes: [1, 2, 3], eps: 1e-5).scalars) < 1e-5)
        let g = try gradientDisagreement([x, w, b]) {
            try groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2])
        } _: {
            let n = try composedNorm($0[0].reshaped([2, 3, 12]), axes: [2], eps: 1e-5).reshaped([2, 6, 3, 2])
            return try n * $0[1].reshaped([1, 6, 1, 1]) + $0[2].reshaped([1, 6, 1, 1])
        }
        #expect(g < 1e-4)
    }

    @Test func groupNormGradCheck() throws {
        let x = randomTensor([2, 4, 6], seed: 22)
        let w = randomTensor([4], seed: 23, low: 0.5, high: 1.5), b = randomTensor([4], seed: 24)
        let full = try gradCheck([x, w, b]) { try groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2]) }
        #expect(full.passed, "\(full)")
        let plain = try gradCheck([x]) { try groupNorm($0[0], groups: 2) }
        #expect(plain.passed, "\(plain)")
        let biasOnly = try gradCheck([x, b]) { try groupNorm($0[0], groups: 4, bias: $0[1]) }
        #expect(biasOnly.passed, "\(biasOnly)")
    }

    @Test func groupNormCPUMatchesReference() throws {
        let x = randomTensor([3, 8, 5, 7], seed: 25)
        let w = randomTensor([8], seed: 26), b = randomTensor([8], seed: 27)
        let d = try backendDisagreement([x, w, b]) {
            try groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2])
        }
        #expect(d.output < 1e-5, "\(d)")
        #expect(d.gradient < 1e-4, "\(d)")
    }

    // MARK: Batch norm

    @Test func batchNormTrainingMatchesComposedOpsAndUpdatesRunningStats() throws {
        let x = randomTensor([4, 3, 2, 2], seed: 28, low: -1, high: 3)
        let w = randomTensor([3], seed: 29), b = randomTensor([3], seed: 30)
        let rm0 = randomTensor([3], seed: 31), rv0 = randomTensor([3], seed: 32, low: 0.5, high: 2)
        var rm: Tensor? = rm0, rv: Tensor? = rv0
        let y = try batchNorm(
            x, runningMean: &rm, runningVar: &rv, weight: w, bias: b, training: true, momentum: 0.2)
        let ref =
            try composedNorm(x, axes: [0, 2, 3], eps: 1e-5) * w.reshaped([1, 3, 1, 1])
            + b.reshaped([1, 3, 1, 1])
        #expect(relativeError(y.scalars, ref.scalars) < 1e-5)
        let batchMean = try x.mean(axes: [0, 2, 3])
        let unbiased = try x.variance(axes: [0, 2, 3], correction: 1)
        let wantMean = try rm0 * 0.8 + batchMean * 0.2, wantVar = try rv0 * 0.8 + unbiased * 0.2
        #expect(relativeError(try #require(rm).scalars, wantMean.scalars) < 1e-5)
        #expect(relativeError(try #require(rv).scalars, wantVar.scalars) < 1e-5)
        let g = try gradientDisagreement([x, w, b]) { t in
            var m: Tensor? = nil, v: Tensor? = nil
            return try batchNorm(
                t[0], runningMean: &m, runningVar: &v, weight: t[1], bias: t[2], training: true)
        } _: {
            try composedNorm($0[0], axes: [0, 2, 3], eps: 1e-5) * $0[1].reshaped([1, 3, 1, 1])
                + $0[2].reshaped([1, 3, 1, 1])
        }
        #expect(g < 1e-4)
    }

    @Test func batchNormEvalUsesRunningStats() throws {
        let x = randomTensor([5, 3], seed: 33)
        let rm0 = randomTensor([3], seed: 34), rv0 = randomTensor([3], seed: 35, low: 0.5, high: 2)
        let w = randomTensor([3], seed: 36), b = randomTensor([3], seed: 37)
        var rm: Tensor? = rm0, rv: Tensor? = rv0
        let y = try batchNorm(x, runningMean: &rm, runningVar: &rv, weight: w, bias: b, training: false)
        let ref = try (x - rm0) * (rv0 + 1e-5).rsqrt() * w + b
        #expect(relativeError(y.scalars, ref.scalars) < 1e-5)
        #expect(rm?.scalars == rm0.scalars && rv?.scalars == rv0.scalars)
    }

    @Test func batchNormGradCheckTrainingAndEval() throws {
        let x = randomTensor([3, 2, 4], seed: 38)
        let w = randomTensor([2], seed: 39, low: 0.5, high: 1.5), b = randomTensor([2], seed: 40)
        let rm0 = randomTensor([2], seed: 41), rv0 = randomTensor([2], seed: 42, low: 0.5, high: 2)
        for training in [true, false] {
            let full = try gradCheck([x, w, b]) { t in
                var rm: Tensor? = rm0, rv: Tensor? = rv0
                return try batchNorm(
                    t[0], runningMean: &rm, runningVar: &rv, weight: t[1], bias: t[2], training: training)
            }
            #expect(full.passed, "training \(training): \(full)")
            let plain = try gradCheck([x]) { t in
                var rm: Tensor? = rm0, rv: Tensor? = rv0
                return try batchNorm(t[0], runningMean: &rm, runningVar: &rv, training: training)
            }
            #expect(plain.passed, "training \(training): \(plain)")
        }
        // Training without running statistics (batch statistics only), 2-D input.
        let x2 = randomTensor([6, 3], seed: 43)
        let noStats = try gradCheck([x2]) { t in
            var rm: Tensor? = nil, rv: Tensor? = nil
            return try batchNorm(t[0], runningMean: &rm, runningVar: &rv, training: true)
        }
        #expect(noStats.passed, "\(noStats)")
    }

    @Test func batchNormCPUMatchesReference() throws {
        let w = randomTensor([5], seed: 44), b = randomTensor([5], seed: 45)
        let rm0 = randomTensor([5], seed: 46), rv0 = randomTensor([5], seed: 47, low: 0.5, high: 2)
        for shape in [[7, 5, 6, 5], [33, 5]] {
            let x = randomTensor(shape, seed: 48, low: -2, high: 3)
            for training in [true, false] {
                let d = try backendDisagreement([x, w, b]) { t in
                    var rm: Tensor? = rm0, rv: Tensor? = rv0
                    return try batchNorm(
                        t[0], runningMean: &rm, runningVar: &rv, weight: t[1], bias: t[2], training: training)
                }
                #expect(d.output < 1e-5, "\(shape) training \(training): \(d)")
                #expect(d.gradient < 1e-4, "\(shape) training \(training): \(d)")
            }
        }
    }

    /// Gradients for weight and bias alone (the input not differentiated) equal those of the full
    /// backward, for the per-element (layer norm), per-channel (group norm) and batch norm kernels.
    @Test func parameterGradientsWithoutInputGradient() throws {
        let x = randomTensor([5, 4, 3], seed: 50)
        let w4 = randomTensor([4], seed: 51), b4 = randomTensor([4], seed: 52)
        let w3 = randomTensor([3], seed: 53), b3 = randomTensor([3], seed: 54)
        var runMean: Tensor? = nil, runVar: Tensor? = nil
        let ops: [(String, Tensor, Tensor, (Tensor, Tensor, Tensor) throws -> Tensor)] = [
            ("layer", w3, b3, { try layerNorm($0, normalizedShape: [3], weight: $1, bias: $2) }),
            ("group", w4, b4, { try groupNorm($0, groups: 2, weight: $1, bias: $2) }),
            (
                "batch", w4, b4,
                {
                    try batchNorm(
                        $0, runningMean: &runMean, runningVar: &runVar, weight: $1, bias: $2, training: true)
                }
            ),
        ]
        for (name, w, b, f) in ops {
            let r = randomTensor(x.shape, seed: 55)
            let all = try gradient(of: { try (f($0[0], $0[1], $0[2]) * r).sum() }, at: [x, w, b])
            let params = try gradient(of: { try (f(x, $0[0], $0[1]) * r).sum() }, at: [w, b])
            #expect(relativeError(params[0].scalars, all[1].scalars) < 1e-6, "\(name)")
            #expect(relativeError(params[1].scalars, all[2].scalars) < 1e-6, "\(name)")
            let inputOnly = try gradient(of: { try (f($0[0], w, b) * r).sum() }, at: [x])
            #expect(relativeError(inputOnly[0].scalars, all[0].scalars) < 1e-6, "\(name)")
        }
    }

    // MARK: Errors

    @Test func badShapesThrow() throws {
        let x = randomTensor([2, 4, 3], seed: 49)
        #expect(throws: TensorError.self) { try layerNorm(x, normalizedShape: [4]) }
        #expect(throws: TensorError.self) { try layerNorm(x, normalizedShape: []) }
        #expect(throws: TensorError.self) { try layerNorm(x, normalizedShape: [3], weight: Tensor.ones([4])) }
        #expect(throws: TensorError.self) { try rmsNorm(x, weight: Tensor.ones([4])) }
        #expect(throws: TensorError.self) { try groupNorm(x, groups: 3) }
        #expect(throws: TensorError.self) { try groupNorm(Tensor.ones([4]), groups: 1) }
        #expect(throws: TensorError.self) { try groupNorm(x, groups: 2, bias: Tensor.ones([3])) }
        var none: Tensor? = nil, noneVar: Tensor? = nil
        #expect(throws: TensorError.self) {
            try batchNorm(x, runningMean: &none, runningVar: &noneVar, training: false)
        }
        var onlyMean: Tensor? = Tensor.zeros([4])
        #expect(throws: TensorError.self) {
            try batchNorm(x, runningMean: &onlyMean, runningVar: &noneVar, training: true)
        }
        var rm: Tensor? = Tensor.zeros([3]), rv: Tensor? = Tensor.ones([3])
        #expect(throws: TensorError.self) {
            try batchNorm(x, runningMean: &rm, runningVar: &rv, training: true)
        }
        var rm1: Tensor? = Tensor.zeros([4]), rv1: Tensor? = Tensor.ones([4])
        #expect(throws: TensorError.self) {
            try batchNorm(Tensor.ones([1, 4]), runningMean: &rm1, runningVar: &rv1, training: true)
        }
    }
}
