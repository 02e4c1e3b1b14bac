import SightlineTestSupport
import Tensor
import Testing

/// Finite-difference gradient checks for the core ops (elementwise, reductions, shapes, matmul).
/// Tolerances: gradCheck's defaults (eps 1e-2, atol 2e-3, rtol 2e-2; see its documentation).
@Suite struct CoreGradCheck {
    let x = randomTensor([3, 4], seed: 1)
    let pos = randomTensor([3, 4], seed: 2, low: 0.5, high: 2)

    @Test(arguments: [
        "neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "square", "gelu", "gelu_tanh",
        "quick_gelu", "silu", "softplus", "pow", "clamp", "affine", "reciprocal",
    ])
    func unary(_ name: String) throws {
        // Inputs kept away from kinks (0 for abs/relu, the clamp bounds) and in the domain.
        let input = ["log", "sqrt", "rsqrt", "pow", "reciprocal"].contains(name) ? pos : x
        let f: (Tensor) throws -> Tensor = {
            switch name {
            case "neg": return -$0
            case "abs": return $0.abs()
            case "exp": return $0.exp()
            case "log": return $0.log()
            case "sqrt": return $0.sqrt()
            case "rsqrt": return $0.rsqrt()
            case "tanh": return $0.tanh()
            case "sigmoid": return $0.sigmoid()
            case "relu": return relu($0)
            case "square": return $0.square()
            case "gelu": return gelu($0)
            case "gelu_tanh": return gelu($0, approximate: true)
            case "quick_gelu": return quickGelu($0)
            case "silu": return silu($0)
            case "softplus": return softplus($0, beta: 2)
            case "pow": return $0.pow(2.5)
            case "clamp": return $0.clamp(min: -0.93, max: 0.97)
            case "affine": return 3 * $0 - 1
            default: return 1 / $0
            }
        }
        let safe = try input.abs().greater(Tensor(0.05))
        let shifted = try Tensor.where(safe, input, input + 0.2)
        let r = try gradCheck([shifted]) { try f($0[0]) }
        #expect(r.passed, "\(name): \(r)")
        let d = try backendDisagreement([shifted]) { try f($0[0]) }
        #expect(d.output <= 1e-5 && d.gradient <= 1e-5, "\(name): cpu vs reference \(d)")
    }

    @Test func binaryWithBroadcasting() throws {
        let a = randomTensor([2, 3, 4], seed: 3)
        let b = randomTensor([3, 1], seed: 4, low: 0.5, high: 1.5)
        let c = randomTensor([4], seed: 5, low: 0.5, high: 1.5)
        for (name, f) in [
            ("add", { (t: [Tensor]) in try t[0] + t[1] }), ("sub", { try $0[0] - $0[1] }),
            ("mul", { try $0[0] * $0[1] }), ("div", { try $0[0] / $0[1] }),
            ("pow", { try $0[1].pow($0[0]) }), ("maximum", { try Tensor.maximum($0[0], $0[1]) }),
        ] as [(String, ([Tensor]) throws -> Tensor)] {
            for rhs in [b, c] {
                // Keep a away from rhs so maximum's kink (a == b) is not inside the finite difference.
                let apart = try (a - rhs).abs().greater(Tensor(0.05))
                let a = try Tensor.where(apart, a, a + 0.1).detached()
                let r = try gradCheck([a, rhs], f)
                #expect(r.passed, "\(name) \(a.shape) vs \(rhs.shape): \(r)")
                let d = try backendDisagreement([a, rhs], f)
                #expect(d.output <= 1e-6 && d.gradient <= 1e-5, "\(name): \(d)")
            }
        }
    }

    @Test func whereAndMaskedFill() throws {
        let mask = try randomTensor([3, 4], seed: 9).greater(Tensor(0))
        let r = try gradCheck([x, pos]) { try Tensor.where(mask, $0[0], $0[1]) }
        #expect(r.passed, "\(r)")
        let m = try gradCheck([x]) { try $0[0].maskedFill(mask, -5) }
        #expect(m.passed, "\(m)")
    }

    @Test func reductions() throws {
        // Distinct values 0.07 apart, so max/min have no kink within the finite-difference step.
        var order = Array(0..<30)
        var g = SplitMix(30)
        order.shuffle(using: &g)
        let t = try Tensor(shape: [2, 3, 5], order.map { Float($0 - 15) * 0.07 })
        let cases: [(String, (Tensor) throws -> Tensor)] = [
            ("sum all", { try $0.sum() }), ("sum 1", { try $0.sum(axis: 1) }),
            ("sum 0,2 keep", { try $0.sum(axes: [0, 2], keepDim: true) }),
            ("mean -1", { try $0.mean(axis: -1) }),
            ("var", { try $0.variance(axes: [1, 2]) }),
            ("std", { try $0.standardDeviation(axes: [2], correction: 0) }),
            ("amax", { try $0.max(axes: [1]) }), ("amin", { try $0.min(axes: [0, 2]) }),
            ("max dim", { try $0.max(axis: 2).values }), ("min dim", { try $0.min(axis: 0).values }),
            ("logsumexp", { try $0.logSumExp(axes: [2]) }), ("norm", { try $0.norm(axes: [1]) }),
            ("softmax 1", { try $0.softmax(axis: 1) }), ("log_softmax -1", { try $0.logSoftmax(axis: -1) }),
            ("cumsum", { try $0.cumsum(axis: 2) }),
        ]
        for (name, f) in cases {
            let r = try gradCheck([t]) { try f($0[0]) }
            #expect(r.passed, "\(name): \(r)")
            let d = try backendDisagreement([t]) { try f($0[0]) }
            #expect(d.output <= 1e-5 && d.gradient <= 1e-5, "\(name): \(d)")
        }
    }

    @Test func shapeOps() throws {
        let t = randomTensor([2, 3, 4], seed: 8)
        let cases: [(String, (Tensor) throws -> Tensor)] = [
            ("reshape", { try $0.reshaped([4, -1]) }), ("permute", { try $0.permuted([2, 0, 1]) }),
            ("transpose", { try $0.transposed() }), ("unsqueeze", { try $0.unsqueezed(-1) }),
            ("broadcast", { try $0.unsqueezed(0).broadcast(to: [2, 2, 3, 4]) }),
            ("slice step", { try $0.slice(axis: 2, start: 1, end: 4, step: 2) }),
            ("narrow", { try $0.narrow(axis: 1, start: 1, length: 2) }),
            ("split", { t in try Tensor.concatenate(t.split(sizes: [1, 3], axis: 2).reversed(), axis: 2) }),
            ("chunk", { try $0.chunked(2, axis: 1)[1] }),
            ("pad", { try $0.padded([(1, 0), (2, 1)], value: 3) }),
            ("flip", { try $0.flipped([0, 2]) }), ("repeat", { try $0.repeated([2, 1, 1, 2]) }),
            ("stack", { try Tensor.stack([$0, $0 * 2], axis: 1) }), ("tril", { try $0.tril(diagonal: 1) }),
            ("triu", { try $0.triu() }), ("flatten", { try $0.flattened(from: 1) }),
        ]
        for (name, f) in cases {
            let r = try gradCheck([t]) { try f($0[0]) }
            #expect(r.passed, "\(name): \(r)")
            let d = try backendDisagreement([t]) { try f($0[0]) }
            #expect(d.output == 0 && d.gradient <= 1e-6, "\(name): \(d)")
        }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func batchedMatmulEveryTransposeFlag(_ flags: (Bool, Bool)) throws {
        let (ta, tb) = flags
        // a: [2, 1, m, k] (or [.., k, m]); b: [3, k, n] (or [.., n, k]): batch broadcasts to [2, 3].
        let a = randomTensor(ta ? [2, 1, 4, 3] : [2, 1, 3, 4], seed: 10)
        let b = randomTensor(tb ? [3, 5, 4] : [3, 4, 5], seed: 11)
        let f = { (t: [Tensor]) in try Tensor.matmul(t[0], t[1], transposeA: ta, transposeB: tb) }
        #expect(try f([a, b]).shape == [2, 3, 3, 5])
        let r = try gradCheck([a, b], f)
        #expect(r.passed, "transA \(ta) transB \(tb): \(r)")
        let d = try backendDisagreement([a, b], f)
        #expect(d.output <= 1e-6 && d.gradient <= 1e-6, "\(d)")
    }

    @Test func linearAndVectorMatmul() throws {
        let xs = randomTensor([2, 3, 4], seed: 12)
        let w = randomTensor([5, 4], seed: 13)
        let bias = randomTensor([5], seed: 14)
        let r = try gradCheck([xs, w, bias]) { try linear($0[0], weight: $0[1], bias: $0[2]) }
        #expect(r.passed, "linear: \(r)")
        let v = randomTensor([4], seed: 15)
        let mv = try gradCheck([w, v]) { try Tensor.matmul($0[0], $0[1]) }
        #expect(mv.passed, "matrix-vector: \(mv)")
    }
}
