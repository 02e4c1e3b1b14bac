import Foundation
import Layers
import SightlineTestSupport
import Testing

// The LoRA adapter of Layers' `Linear` (PEFT's names, initialisation, scale, dropout, merge) and the
// throwing initialisers of the layers whose sizes come from user configs.

@Suite struct LinearLoRATests {
    @Test func adapterHasPeftNamesShapesAndInitialisation() throws {
        let lin = Linear(6, 4, seed: 1)
        var g = RandomGenerator(seed: 2)
        try lin.attachLoRA(rank: 3, scale: 2, generator: &g)
        #expect(
            lin.namedParameters().map { "\($0.0) \($0.1.shape)" } == [
                "weight [4, 6]", "bias [4]", "lora_A.weight [3, 6]", "lora_B.weight [4, 3]",
            ])
        let a = try #require(lin.lora).a.data.scalars
        let bound = 1 / Float(6).squareRoot()  // kaiming_uniform_(a=sqrt(5)) over fan_in 6
        #expect(a.allSatisfy { abs($0) <= bound } && a.contains { abs($0) > bound / 2 })
        #expect(lin.lora!.b.data.scalars.allSatisfy { $0 == 0 })
        var again = RandomGenerator(seed: 2)
        #expect(throws: TensorError.self) { try lin.attachLoRA(rank: 3, scale: 2, generator: &again) }
        #expect(throws: TensorError.self) { try Linear(2, 2).attachLoRA(rank: 0, scale: 1, generator: &again) }
    }

    @Test func adapterAddsScaledLowRankProductAndMergesExactly() throws {
        let lin = Linear(5, 3, seed: 4)
        var g = RandomGenerator(seed: 5)
        try lin.attachLoRA(rank: 2, scale: 1.5, generator: &g)
        lin.lora!.b.data = randomTensor([3, 2], seed: 6)
        let x = randomTensor([2, 4, 5], seed: 7)
        let y = try lin(x)
        let manual = try linear(x, weight: lin.weight.data, bias: lin.bias!.data)
            + linear(linear(x, weight: lin.lora!.a.data), weight: lin.lora!.b.data) * 1.5
        #expect(relativeError(y.scalars, manual.scalars) < 1e-6)
        let w0 = lin.weight.data.scalars
        try lin.merge()
        #expect(relativeError(try lin(x).scalars, y.scalars) < 1e-6)
        try lin.merge()  // a second merge is a no-op
        #expect(relativeError(try lin(x).scalars, y.scalars) < 1e-6)
        try lin.unmerge()
        #expect(relativeError(lin.weight.data.scalars, w0) < 1e-6)
        #expect(relativeError(try lin(x).scalars, y.scalars) < 1e-6)
        #expect(relativeError(try lin.effectiveWeight().scalars, (try lin.lora!.delta() + lin.weight.data).scalars) < 1e-7)
        // merge_and_unload: the plain layer computes what the adapted one did.
        try lin.merge()
        lin.detachLoRA()
        #expect(lin.namedParameters().count == 2)
        #expect(relativeError(try lin(x).scalars, y.scalars) < 1e-6)
    }

    @Test func adapterGradientsMatchFiniteDifferences() throws {
        let lin = Linear(4, 3, seed: 8)
        var g = RandomGenerator(seed: 9)
        try lin.attachLoRA(rank: 2, scale: 2, generator: &g)
        lin.lora!.b.data = randomTensor([3, 2], seed: 10)
        let x = randomTensor([2, 4], seed: 11)
        let r = try gradCheck([x, lin.lora!.a.data, lin.lora!.b.data]) { t in
            try linear(t[0], weight: lin.weight.data, bias: lin.bias!.data)
                + linear(linear(t[0], weight: t[1]), weight: t[2]) * 2
        }
        #expect(r.passed, "\(r)")
        // The layer's own gradients equal those of the explicit formula.
        let (_, grads) = try valueAndGradient(at: lin.namedParameters()) { try lin(x).square().sum() }
        let (_, ref) = try valueAndGradient(of: { t in
            try (linear(x, weight: lin.weight.data, bias: lin.bias!.data)
                + linear(linear(x, weight: t[0]), weight: t[1]) * 2).square().sum()
        }, at: [lin.lora!.a.data, lin.lora!.b.data])
        #expect(relativeError(grads["lora_A.weight"]!.scalars, ref[0].scalars) < 1e-5)
        #expect(relativeError(grads["lora_B.weight"]!.scalars, ref[1].scalars) < 1e-5)
    }

    @Test func adapterDropoutActsOnlyInTrainingMode() throws {
        let lin = Linear(8, 4, seed: 12)
        var g = RandomGenerator(seed: 13)
        try lin.attachLoRA(rank: 2, scale: 1, dropout: 0.5, generator: &g)
        lin.lora!.b.data = randomTensor([4, 2], seed: 14)
        let x = randomTensor([3, 8], seed: 15)
        lin.eval()
        let a = try lin(x), b = try lin(x)
        #expect(a.scalars == b.scalars)
        lin.train()
        let c = try lin(x)
        #expect(c.scalars != a.scalars, "dropout changed nothing in training mode")
        // The base path is never dropped: with B = 0 training mode equals evaluation mode.
        lin.lora!.b.data = Tensor.zeros([4, 2])
        #expect(try lin(x).scalars == (try linear(x, weight: lin.weight.data, bias: lin.bias!.data)).scalars)
    }

    @Test func rankStabilisedScaleAndTargetRule() throws {
        #expect(LoRAConfig(r: 4, loraAlpha: 8).scale == 2)
        #expect(LoRAConfig(r: 4, loraAlpha: 8, useRslora: true).scale == 4)
        let c = LoRAConfig(targetModules: ["q_proj"])
        #expect(c.targets("q_proj") && c.targets("a.b.q_proj") && !c.targets("a.xq_proj") && !c.targets("q_proj.x"))
        let re = LoRAConfig(targetPattern: #"blocks\.[02]\.fc"#)
        #expect(re.targets("blocks.0.fc") && !re.targets("blocks.1.fc") && !re.targets("x.blocks.0.fc"))
    }
}

@Suite struct ThrowingLayerInitialisers {
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test func multiHeadAttentionNamesTheBadValue() {
        #expect(message { _ = try MultiHeadAttention(embedDim: 10, numHeads: 3) }.contains("embedDim 10"))
        #expect(message { _ = try MultiHeadAttention(embedDim: 8, numHeads: 0) }.contains("numHeads must be positive, got 0"))
        #expect(message { _ = try MultiHeadAttention(embedDim: 8, numHeads: 4, numKeyValueHeads: 3) }.contains("numKeyValueHeads 3"))
        #expect(message { _ = try MultiHeadAttention(embedDim: 8, numHeads: 2, contextDim: -1) }.contains("contextDim must be positive, got -1"))
        #expect(message { _ = try MultiHeadAttention(embedDim: 6, numHeads: 4, headDim: 2) } == "no error")
    }

    @Test func conv2dNamesTheBadValue() {
        #expect(message { _ = try Conv2d(4, 6, kernelSize: (3, 3), groups: 4) }.contains("groups 4"))
        #expect(message { _ = try Conv2d(4, 8, kernelSize: (0, 3)) }.contains("kernelSize.0 must be positive, got 0"))
        #expect(message { _ = try Conv2d(4, 8, kernelSize: (3, 3), stride: (1, 0)) }.contains("stride.1 must be positive, got 0"))
        #expect(message { _ = try Conv2d(4, 8, kernelSize: (3, 3), padding: (-1, 0)) }.contains("padding"))
        #expect(message { _ = try Conv2d(0, 8, kernelSize: (3, 3)) }.contains("inChannels must be positive, got 0"))
    }
}
