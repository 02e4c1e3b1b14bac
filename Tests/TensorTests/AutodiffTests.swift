import Foundation
import SightlineTestSupport
import Tensor
import TensorKernels
import Testing

@Suite struct Autodiff {
    @Test func valueAndGradientKeyedByName() throws {
        let w = Parameter(try Tensor(shape: [2], scalars: [1, 2]))
        let b = Parameter(Tensor(3))
        let frozen = Parameter(Tensor([5]), trainable: false)
        let (loss, grads) = try valueAndGradient(at: [("w", w), ("b", b), ("frozen", frozen)]) {
            try ((w.value * w.value).sum() * b.value + frozen.value.sum())
        }
        #expect(try loss.item() == 20)  // (1 + 4) * 3 + 5
        #expect(grads["w"]?.scalars == [6, 12])  // 2 w b
        #expect(grads["b"]?.scalars == [5])
        #expect(grads["frozen"] == nil)
        #expect(grads.names == ["w", "b"])
    }

    @Test func lossMustBeScalar() throws {
        let w = Parameter(Tensor([1, 2]))
        #expect(throws: TensorError.self) { try valueAndGradient(at: [("w", w)]) { w.value * 2 } }
        do {
            _ = try valueAndGradient(at: [("w", w)]) { w.value * 2 }
        } catch let e as TensorError {
            #expect(e.description.contains("[2]"))
        }
    }

    @Test func shapeErrorsNameOpAndShapes() throws {
        let a = Tensor.zeros([2, 3]), b = Tensor.zeros([4, 5])
        do {
            _ = try Tensor.matmul(a, b)
            Issue.record("expected an error")
        } catch let e as TensorError {
            #expect(e.op == "matmul")
            #expect(e.message.contains("[2, 3]") && e.message.contains("[4, 5]"))
        }
        do {
            _ = try a + Tensor.zeros([3, 2])
            Issue.record("expected an error")
        } catch let e as TensorError {
            #expect(e.op == "add" && e.message.contains("[2, 3]") && e.message.contains("[3, 2]"))
        }
    }

    @Test func noGradRecordsNothing() throws {
        let w = Parameter(Tensor([1, 2]))
        let y = try noGrad { try (w.value * 3).sum() }
        #expect(!y.requiresGradient)
        let z = try (w.value * 3).sum()
        #expect(z.requiresGradient)
        #expect(!z.detached().requiresGradient)
    }

    @Test func accumulationAcrossCalls() throws {
        let w = Parameter(Tensor([1, 2]))
        var total = Gradients()
        for scale: Float in [1, 2, 3] {
            let (_, g) = try valueAndGradient(at: [("w", w)]) { try (w.value * scale).sum() }
            try total.accumulate(g)
        }
        #expect(total["w"]?.scalars == [6, 6])
    }

    @Test func hookFiresOncePerParameterBeforeBackwardEnds() throws {
        // Two layers: the last layer's gradient is final before the first layer's is computed.
        let w1 = Parameter(randomTensor([4, 4], seed: 1)), w2 = Parameter(randomTensor([4, 4], seed: 2))
        let x = randomTensor([3, 4], seed: 3)
        var order: [String] = []
        let (_, grads) = try valueAndGradient(
            at: [("w1", w1), ("w2", w2)],
            onGradientReady: { name, g in
                order.append(name)
                #expect(g.shape == [4, 4])
            }
        ) {
            let h = try relu(Tensor.matmul(x, w1.value))
            return try Tensor.matmul(h, w2.value).square().sum()
        }
        #expect(order == ["w2", "w1"])
        #expect(grads.count == 2)
    }

    @Test func sharedParameterGradientsSum() throws {
        let w = Parameter(Tensor([1, 2, 3]))
        let (_, g) = try valueAndGradient(at: [("w", w)]) { try (w.value * w.value + w.value).sum() }
        #expect(g["w"]?.scalars == [3, 5, 7])
    }

    @Test func checkpointMatchesPlainBackward() throws {
        let w1 = Parameter(randomTensor([4, 6], seed: 4)), w2 = Parameter(randomTensor([6, 4], seed: 5))
        let x = randomTensor([2, 4], seed: 6)
        func block(_ t: [Tensor]) throws -> Tensor {
            try gelu(Tensor.matmul(Tensor.matmul(t[0], w1.value).tanh(), w2.value))
        }
        let params = [("w1", w1), ("w2", w2)]
        let (l1, g1) = try valueAndGradient(at: params) { try block([x]).square().sum() }
        var calls = 0
        let (l2, g2) = try valueAndGradient(at: params) {
            try checkpoint([x]) { t in
                calls += 1; return try block(t)
            }.square().sum()
        }
        #expect(try l1.item() == l2.item())
        #expect(calls == 2)  // forward once, recomputed once in backward
        for name in ["w1", "w2"] {
            #expect(relativeError(g1[name]!.scalars, g2[name]!.scalars) < 1e-6, "\(name)")
        }
        // Gradient with respect to the checkpointed block's input.
        let gx = try gradient(of: { try checkpoint([$0[0]], block).sum() }, at: [x])[0]
        let gxPlain = try gradient(of: { try block([$0[0]]).sum() }, at: [x])[0]
        #expect(relativeError(gx.scalars, gxPlain.scalars) < 1e-6)
    }

    @Test func copyOnWriteKeepsValues() throws {
        let a = Tensor([1, 2, 3])
        var b = a
        b.withUnsafeMutableBufferPointer { $0[0] = 10 }
        #expect(a.scalars == [1, 2, 3])
        #expect(b.scalars == [10, 2, 3])
    }

    @Test func descriptionPrintsLikePyTorch() throws {
        let t = try Tensor(shape: [2, 2], scalars: [1, 2.5, -3, 4])
        #expect(t.description.hasPrefix("tensor([[1.0000, 2.5000],"))
        #expect(t.description.hasSuffix("shape=[2, 2])"))
        #expect(Tensor.zeros([20]).description.contains("..."))
    }
}

@Suite struct RandomNumbers {
    @Test func sameSeedSameNumbersOnAnyThreadCount() throws {
        var results: [[Float]] = []
        for threads in [1, 2] {
            ComputeRuntime.$threadsOverride.withValue(threads) {
                var g = RandomGenerator(seed: 42)
                let u = Tensor.uniform([100_003], generator: &g)
                let n = Tensor.normal([50_001], generator: &g)
                results.append(u.scalars + n.scalars)
            }
        }
        #expect(results[0] == results[1])
    }

    @Test func distributionsHaveTheirMoments() throws {
        var g = RandomGenerator(seed: 1)
        let u = Tensor.uniform([200_000], low: -2, high: 2, generator: &g)
        #expect(abs(try u.mean().item()) < 0.02)
        #expect(try u.max().item() < 2 && u.min().item() >= -2)
        let n = Tensor.normal([200_000], mean: 1, std: 3, generator: &g)
        #expect(abs(try n.mean().item() - 1) < 0.05)
        #expect(abs(try n.standardDeviation().item() - 3) < 0.05)
        let t = Tensor.truncatedNormal([200_000], std: 1, a: -1, b: 1, generator: &g)
        #expect(try t.max().item() <= 1 && t.min().item() >= -1)
        // std of a standard normal truncated to [-1, 1] is 0.5379.
        #expect(abs(try t.standardDeviation().item() - 0.5379) < 0.01)
    }

    @Test func drawsAdvanceTheGenerator() {
        var g = RandomGenerator(seed: 3)
        let a = Tensor.uniform([8], generator: &g)
        let b = Tensor.uniform([8], generator: &g)
        #expect(a.scalars != b.scalars)
        #expect(g.offset == 4)
    }
}

@Suite struct Creation {
    @Test func rangesAndIdentity() throws {
        #expect(try Tensor.arange(0, 5).scalars == [0, 1, 2, 3, 4])
        #expect(try Tensor.arange(1, 2, step: 0.25).scalars == [1, 1.25, 1.5, 1.75])
        #expect(Tensor.linspace(0, 1, count: 5).scalars == [0, 0.25, 0.5, 0.75, 1])
        #expect(Tensor.eye(2, 3).scalars == [1, 0, 0, 0, 1, 0])
        #expect(Tensor.full([2], 7).scalars == [7, 7])
        #expect(throws: TensorError.self) { try Tensor.arange(0, 5, step: -1) }
        #expect(throws: TensorError.self) { try Tensor(shape: [2, 2], scalars: [1, 2, 3]) }
    }

    @Test func fastExpAndTanhMatchLibm() {
        var worstExp: Float = 0, worstTanh: Float = 0
        var x: Float = -87
        while x < 88 {
            let e = Foundation.exp(x)
            worstExp = max(worstExp, abs(FastMath.exp(x) - e) / e)
            x += 0.0137
        }
        x = -12
        while x < 12 {
            let t = Foundation.tanh(x)
            worstTanh = max(worstTanh, abs(FastMath.tanh(x) - t) / max(abs(t), 1e-30))
            x += 0.00731
        }
        #expect(worstExp < 3e-7, "exp relative error \(worstExp)")
        #expect(worstTanh < 5e-7, "tanh relative error \(worstTanh)")
    }
}
