import SightlineTestSupport
import Tensor
import Testing

/// The backend seam: every VJP runs on the backend that ran its forward, whichever backend is current
/// when backward runs; the optimizer-phase kernels go through the backend and do not depend on the
/// thread count.
@Suite struct BackendSeam {
    /// Forward (and the scalar reduction) on backend `A`; backward called while `B` is current.
    /// Returns the kernels `A` ran during backward and the kernels `B` ran at all.
    func backwardKernels(_ inputs: [Tensor], _ f: @escaping ([Tensor]) throws -> Tensor) throws -> (
        forwardBackend: [String], otherBackend: [String]
    ) {
        let a = RecordingBackend(name: "A"), b = RecordingBackend(name: "B")
        try withBackend(b) {
            _ = try valueAndGradient(
                of: { ins in
                    let y = try withBackend(a) { try f(ins).sum() }
                    a.reset()  // what A runs from here on is backward
                    return y
                }, at: inputs)
        }
        return (a.calls, b.calls)
    }

    @Test func everyVJPRunsOnTheBackendThatRanItsForward() throws {
        let x = randomTensor([2, 3, 4], seed: 1)
        let w = randomTensor([4, 5], seed: 2)
        let img = randomTensor([1, 2, 6, 6], seed: 3)
        let kernel = randomTensor([3, 2, 3, 3], seed: 4)
        let q = randomTensor([1, 2, 5, 4], seed: 5)
        let logits = randomTensor([6, 7], seed: 6)
        let targets = IndexTensor([0, 3, -100, 6, 2, 1])
        let column = try w.narrow(axis: 1, start: 0, length: 1).reshaped([4])
        let table = try w.transposed()
        let cases: [(String, [Tensor], ([Tensor]) throws -> Tensor)] = [
            ("unary", [x], { gelu($0[0]).exp() }),
            ("binary broadcast", [x, column], { try $0[0] * $0[1] }),
            ("matmul", [x, w], { try $0[0].matmul($0[1]) }),
            ("softmax", [x], { try $0[0].logSoftmax(axis: -1) }),
            ("reductions", [x], { try $0[0].max(axes: [1]) + $0[0].mean(axis: 1) }),
            ("cumsum", [x], { try $0[0].cumsum(axis: 2) }),
            ("shape", [x], { try $0[0].permuted([2, 0, 1]).narrow(axis: 0, start: 1, length: 2).padded([(1, 0), (0, 0), (0, 1)], value: 0) }),
            ("layer norm", [x], { try layerNorm($0[0], normalizedShape: [4]) }),
            ("rms norm", [x], { try rmsNorm($0[0]) }),
            ("conv2d", [img, kernel], { try conv2d($0[0], weight: $0[1], padding: (1, 1)) }),
            ("pooling", [img], { try maxPool2d($0[0], kernel: (2, 2)) + avgPool2d($0[0], kernel: (2, 2)) }),
            ("interpolate", [img], { try interpolate($0[0], size: (9, 9), mode: .bilinear) }),
            ("attention", [q, q * 0.5, q.exp()], { try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2]) }),
            ("cross-entropy + z-loss", [logits], {
                let p = try crossEntropyParts(logits: $0[0], targets: targets, zLossCoefficient: 1e-2)
                return try p.lossSum + p.zLossSum
            }),
            ("gather", [x], { try $0[0].gather(axis: 2, index: IndexTensor(shape: [2, 3, 2], values: [Int](repeating: 1, count: 12))) }),
            ("embedding", [table], { try embedding(IndexTensor([1, 0, 3]), weight: $0[0]) }),
            ("dropout", [x], { try dropout($0[0], p: 0.5, training: true, seed: 7, offset: 0) }),
            ("checkpoint", [x, w], { t in try checkpoint(t) { try gelu($0[0].matmul($0[1])) } }),
        ]
        for (name, inputs, f) in cases {
            let (forward, other) = try backwardKernels(inputs, f)
            #expect(other.isEmpty, "\(name): backward ran \(other) on the backend that was current, not the forward's")
            #expect(!forward.isEmpty, "\(name): backward ran no kernel on the forward's backend")
        }
    }

    @Test func optimizerKernelsDoNotDependOnTheThreadCount() throws {
        let n = 300_007  // several chunks and blocks, and a ragged tail
        let p0 = randomTensor([n], seed: 11), g = randomTensor([n], seed: 12)
        let m0 = randomTensor([n], seed: 13), v0 = randomTensor([n], seed: 14, low: 0, high: 1)
        let adam = AdamWCoefficients(
            decay: 0.999, beta1: 0.9, beta2: 0.95, stepSize: 1e-3, bc2Sqrt: 0.3, eps: 1e-8, gradientScale: 0.7)
        let sgd = SGDCoefficients(learningRate: 0.1, weightDecay: 1e-3, momentum: 0.9, gradientWeight: 0.8, nesterov: true, gradientScale: 0.7)
        func run() throws -> (sum: Double, adam: [[Float]], sgd: [[Float]]) {
            var p = p0, m = m0, v = v0
            try p.adamWUpdate(gradient: g, expAvg: &m, expAvgSq: &v, adam)
            var q = p0
            var buf: Tensor? = nil
            try q.sgdUpdate(gradient: g, momentumBuffer: &buf, sgd)  // first step: buf = d
            try q.sgdUpdate(gradient: g, momentumBuffer: &buf, sgd)
            return (g.sumOfSquares(), [p.scalars, m.scalars, v.scalars], [q.scalars, buf!.scalars])
        }
        var results: [(sum: Double, adam: [[Float]], sgd: [[Float]])] = []
        for threads in [1, 2, 3, 7] {
            results.append(try ComputeRuntime.$threadsOverride.withValue(threads) { try run() })
        }
        for r in results.dropFirst() {
            #expect(r.sum == results[0].sum)
            #expect(r.adam == results[0].adam)
            #expect(r.sgd == results[0].sgd)
        }
        // The reference twins: the same float operations for the updates, a sequential Double sum.
        let reference = try withBackend(ReferenceBackend.shared) { try run() }
        #expect(reference.adam == results[0].adam)
        #expect(reference.sgd == results[0].sgd)
        #expect(abs(reference.sum - results[0].sum) <= 1e-12 * reference.sum)
        let exact = g.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(abs(exact - results[0].sum) <= 1e-12 * exact)
        // Shapes are checked and named.
        var p = p0, m = m0, short = Tensor.zeros([3])
        #expect(throws: TensorError.self) { try p.adamWUpdate(gradient: g, expAvg: &m, expAvgSq: &short, adam) }
    }
}
