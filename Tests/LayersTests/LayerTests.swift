import Layers
import SightlineTestSupport
import Tensor
import Testing

@Suite struct LayerNamesAndShapes {
    @Test func attentionNamesFollowEachArchitecture() throws {
        let clip = try MultiHeadAttention(embedDim: 8, numHeads: 2, names: .clip)
        #expect(
            clip.namedParameters(prefix: "self_attn.").map(\.0) == [
                "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
                "self_attn.k_proj.bias",
                "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias",
            ])
        let llama = try MultiHeadAttention(
            embedDim: 8, numHeads: 4, numKeyValueHeads: 2, bias: false, 
            names: .init(query: "q_proj", key: "k_proj", value: "v_proj", output: "o_proj"))
        #expect(
            llama.namedParameters().map(\.0) == [
                "q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
            ])
        #expect(llama.key!.weight.shape == [4, 8])  // 2 kv heads x head dim 2
        let cos = try MultiHeadAttention(embedDim: 8, numHeads: 2, contextDim: 6, names: cosNames)
        #expect(
            cos.namedParameters().map(\.0) == [
                "to_q.weight", "to_q.bias", "to_kv.weight", "to_kv.bias", "proj.weight", "proj.bias",
            ])
        #expect(cos.keyValue!.weight.shape == [16, 6])
    }

    @Test func fusedKeyValueEqualsSeparateProjections() throws {
        // to_kv rows [0, C) produce keys and [C, 2C) values: copying them into separate k/v projections
        // must give the same attention output.
        let fused = try MultiHeadAttention(embedDim: 8, numHeads: 2, contextDim: 6, names: cosNames, seed: 3)
        let split = try MultiHeadAttention(embedDim: 8, numHeads: 2, contextDim: 6, names: .clip, seed: 4)
        split.query.weight.data = fused.query.weight.data
        split.query.bias!.data = fused.query.bias!.data
        split.output.weight.data = fused.output.weight.data
        split.output.bias!.data = fused.output.bias!.data
        let kv = fused.keyValue!.weight.data, kvb = fused.keyValue!.bias!.data
        split.key!.weight.data = try kv.narrow(axis: 0, start: 0, length: 8)
        split.value!.weight.data = try kv.narrow(axis: 0, start: 8, length: 8)
        split.key!.bias!.data = try kvb.narrow(axis: 0, start: 0, length: 8)
        split.value!.bias!.data = try kvb.narrow(axis: 0, start: 8, length: 8)
        let q = randomTensor([2, 3, 8], seed: 1), ctx = randomTensor([2, 5, 6], seed: 2)
        let a = try fused(q, context: ctx), b = try split(q, context: ctx)
        #expect(a.shape == [2, 3, 8])
        #expect(relativeError(a.scalars, b.scalars) < 1e-6)
    }

    @Test func selfAttentionMatchesManualComputation() throws {
        let attn = try MultiHeadAttention(embedDim: 4, numHeads: 1, seed: 5)
        let x = randomTensor([1, 3, 4], seed: 6)
        let y = try attn(x, mask: .causal)
        let q = try attn.query(x), k = try attn.key!(x), v = try attn.value!(x)
        let scores = try Tensor.matmul(q, k, transposeB: true) / 2  // sqrt(head dim 4)
        let masked = try scores.maskedFill(
            Tensor.triangle(rows: 3, cols: 3, diagonal: 1, lower: false), -.infinity)
        let manual = try attn.output(Tensor.matmul(masked.softmax(axis: -1), v))
        #expect(relativeError(y.scalars, manual.scalars) < 1e-6)
        let r = try gradCheck([x]) { try attn($0[0], mask: .causal) }
        #expect(r.passed, "\(r)")
    }

    @Test func convolutionAndNormLayersKeepPyTorchLayouts() throws {
        let conv = try Conv2d(4, 8, kernelSize: (3, 3), padding: (1, 1), groups: 2)
        #expect(conv.weight.shape == [8, 2, 3, 3])
        let x = randomTensor([2, 4, 5, 5], seed: 1)
        #expect(try conv(x).shape == [2, 8, 5, 5])
        let ln2d = LayerNorm2d(4)
        let y = try ln2d(x)
        // Each pixel's channel vector has mean 0 and (population) variance 1.
        let perPixel = try y.permuted([0, 2, 3, 1]).reshaped([-1, 4])
        #expect(try perPixel.mean(axis: 1).abs().max().item() < 1e-5)
        #expect(try (perPixel.variance(axes: [1], correction: 0) - 1).abs().max().item() < 1e-3)
        // Normalising 4 values is strongly curved: a smaller finite-difference step.
        let r = try gradCheck(eps: 1e-3, atol: 5e-3, [x]) { try ln2d($0[0]) }
        #expect(r.passed, "\(r)")
        #expect(RMSNorm(6).namedParameters().map(\.0) == ["weight"])
        #expect(GroupNorm(groups: 2, channels: 4).namedParameters().map(\.0) == ["weight", "bias"])
        #expect(LayerNorm(6).namedParameters().map(\.0) == ["weight", "bias"])
    }

    @Test func batchNormTracksRunningStatsInTrainingOnly() throws {
        let bn = BatchNorm2d(3)
        #expect(
            bn.stateDict().map(\.0) == [
                "weight", "bias", "running_mean", "running_var", "num_batches_tracked",
            ])
        let x = randomTensor([4, 3, 2, 2], seed: 2, low: 1, high: 3)
        _ = try bn(x)
        #expect(try bn.numBatchesTracked.value.item() == 1)
        let mean = try x.mean(axes: [0, 2, 3])
        #expect(relativeError(bn.runningMean.value.scalars, (mean * 0.1).scalars) < 1e-5)
        bn.eval()
        let before = bn.runningMean.value.scalars
        let y = try bn(x)
        #expect(bn.runningMean.value.scalars == before)
        // Eval: (x - running_mean) / sqrt(running_var + eps).
        let expected =
            try (x - bn.runningMean.value.reshaped([1, 3, 1, 1]))
            / (bn.runningVar.value.reshaped([1, 3, 1, 1]) + 1e-5).sqrt()
        #expect(relativeError(y.scalars, expected.scalars) < 1e-5)
    }

    @Test func embeddingAndDropout() throws {
        let e = Embedding(10, 4, seed: 1)
        let out = try e(IndexTensor(shape: [2, 3], values: [0, 1, 2, 9, 9, 3]))
        #expect(out.shape == [2, 3, 4])
        // out[1, 0, :] is row 9 of the table.
        #expect(
            try out.narrow(axis: 0, start: 1, length: 1).narrow(axis: 1, start: 0, length: 1).scalars
                == e.weight.data.narrow(axis: 0, start: 9, length: 1).scalars)
        #expect(throws: TensorError.self) { try e(IndexTensor([10])) }
        let d = Dropout(0.5, seed: 3)
        let ones = Tensor.ones([1000])
        let kept = try d(ones).scalars
        #expect(kept.allSatisfy { $0 == 0 || $0 == 2 })
        d.eval()
        #expect(try d(ones).scalars == ones.scalars)
    }
}

/// Fused key/value projection names (the shape of Bridges' Chain-of-Sight preset).
private let cosNames = MultiHeadAttention.Names(
    query: "to_q", key: "", value: "", output: "proj", fusedKeyValue: "to_kv")
