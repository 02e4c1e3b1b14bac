import Layers
import SightlineTestSupport
import Testing

/// A two-level tree shaped like a slice of HF CLIP's encoder, to check dotted names.
final class ToyLayer: Module {
    let mlp = MLP(4, hidden: 8)
    let norm = Linear(4, 4, bias: false, seed: 9)
    let stats = Buffer(Tensor.zeros([2]))
    let ids = Buffer(Tensor.zeros([3]), persistent: false)
    override var localChildren: [(String, Module)] { [("mlp", mlp), ("layer_norm1", norm)] }
    override var localBuffers: [(String, Buffer)] { [("stats", stats), ("position_ids", ids)] }
}

final class ToyEncoder: Module {
    let layers = ModuleList([ToyLayer(), ToyLayer()])
    let scale = Parameter(Tensor(1))
    override var localParameters: [(String, Parameter)] { [("logit_scale", scale)] }
    override var localChildren: [(String, Module)] { [("layers", layers)] }
}

@Suite struct ModuleTree {
    @Test func dottedNamesInRegistrationOrder() {
        let m = ToyEncoder()
        let names = m.namedParameters(prefix: "encoder.").map(\.0)
        #expect(
            names == [
                "encoder.logit_scale",
                "encoder.layers.0.mlp.fc1.weight", "encoder.layers.0.mlp.fc1.bias",
                "encoder.layers.0.mlp.fc2.weight", "encoder.layers.0.mlp.fc2.bias",
                "encoder.layers.0.layer_norm1.weight",
                "encoder.layers.1.mlp.fc1.weight", "encoder.layers.1.mlp.fc1.bias",
                "encoder.layers.1.mlp.fc2.weight", "encoder.layers.1.mlp.fc2.bias",
                "encoder.layers.1.layer_norm1.weight",
            ])
        // Non-persistent buffers are enumerated but not saved.
        #expect(
            m.namedBuffers().map(\.0) == [
                "layers.0.stats", "layers.0.position_ids", "layers.1.stats", "layers.1.position_ids",
            ])
        let saved = m.stateDict().map(\.0)
        #expect(saved.contains("layers.1.stats") && !saved.contains("layers.1.position_ids"))
        #expect(m.namedModules().map(\.0).prefix(3) == ["", "layers", "layers.0"])
    }

    @Test func countsAndFreezing() {
        let m = ToyEncoder()
        let perLayer = (4 * 8 + 8) + (8 * 4 + 4) + 16
        #expect(m.parameterCount() == 1 + 2 * perLayer)
        #expect(m.freeze(prefix: "layers.0.") == 5)
        #expect(m.parameterCount(trainableOnly: true) == 1 + perLayer)
        #expect(m.trainableParameters().allSatisfy { !$0.0.hasPrefix("layers.0.") })
        #expect(m.unfreeze(prefix: "layers.0.mlp.fc2") == 2)
        #expect(m.freeze(where: { $0.hasSuffix(".bias") }) == 3)
        #expect(m.parameterCount(trainableOnly: true) == 1 + (8 * 4) + (4 * 8 + 8 * 4 + 16))
    }

    @Test func allParametersVisitsTheWholeTreeAndStopsAtTheFirstFailure() {
        let m = ToyEncoder()
        var seen = 0
        #expect(m.allParameters { _ in seen += 1; return true })
        #expect(seen == m.namedParameters().count)
        #expect(m.allParameters { $0.isTrainable })
        m.freeze(prefix: "")
        #expect(m.allParameters { !$0.isTrainable })
        // One trainable parameter deep in the tree is found; the walk stops there.
        #expect(m.unfreeze(prefix: "layers.1.mlp.fc2.bias") == 1)
        seen = 0
        #expect(!m.allParameters { seen += 1; return !$0.isTrainable })
        #expect(seen == m.namedParameters().firstIndex { $0.0 == "layers.1.mlp.fc2.bias" }! + 1)
    }

    @Test func seededInitialisationIsReproducibleAndPyTorchShaped() throws {
        let a = ToyEncoder(), b = ToyEncoder()
        a.resetParameters(seed: 5)
        b.resetParameters(seed: 5)
        for ((n1, p1), (_, p2)) in zip(a.namedParameters(), b.namedParameters()) {
            #expect(p1.data.scalars == p2.data.scalars, "\(n1)")
        }
        b.resetParameters(seed: 6)
        #expect(a.layers[0].mlp.fc1.weight.data.scalars != b.layers[0].mlp.fc1.weight.data.scalars)
        // Linear: U(-1/sqrt(in), 1/sqrt(in)).
        let big = Linear(64, 256, seed: 1)
        let w = big.weight.data
        #expect(try w.max().item() <= 0.125 && w.min().item() >= -0.125)
        #expect(try w.max().item() > 0.12)  // the bound is reached, not a narrower range
    }

    @Test func trainEvalPropagates() {
        let m = ToyEncoder()
        m.eval()
        #expect(m.namedModules().allSatisfy { !$0.1.isTraining })
        m.train()
        #expect(m.layers[1].mlp.fc2.isTraining)
    }

    @Test func sequentialAndGradientsByName() throws {
        let seq = Sequential([Linear(3, 5, seed: 1), Lambda { relu($0) }, Linear(5, 2, seed: 2)])
        #expect(seq.namedParameters().map(\.0) == ["0.weight", "0.bias", "2.weight", "2.bias"])
        let x = randomTensor([4, 3], seed: 3)
        let (_, grads) = try valueAndGradient(at: seq.namedParameters()) { try seq(x).square().sum() }
        #expect(grads.names == ["0.weight", "0.bias", "2.weight", "2.bias"])
        #expect(grads["0.weight"]!.shape == [5, 3])
        // Frozen parameters get no gradient and record nothing.
        seq.freeze(prefix: "0.")
        let (_, g2) = try valueAndGradient(at: seq.namedParameters()) { try seq(x).square().sum() }
        #expect(g2.names == ["2.weight", "2.bias"])
    }

    @Test func linearMatchesFunctionalLinearAndLayout() throws {
        let l = Linear(3, 2, seed: 4)
        #expect(l.weight.shape == [2, 3])  // [out, in] as PyTorch
        let x = randomTensor([5, 3], seed: 1)
        let y = try l(x)
        let manual = try Tensor.matmul(x, l.weight.data, transposeB: true) + l.bias!.data
        #expect(y.scalars == manual.scalars)
    }
}
