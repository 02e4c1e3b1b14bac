import Foundation
import Language
import SightlineTestSupport
import Tensor
import Testing

// Opt-in measurements (SIGHTLINE_BENCH=1): tokenizer encoding speed, KV-cache generation speed, and the
// attention cost of a packed row vs one causal row. They print numbers and check only the relations
// that must hold whatever the machine (packed cheaper than causal, cache faster than recompute).

let benchEnabled = ProcessInfo.processInfo.environment["SIGHTLINE_BENCH"] != nil

func bestSeconds(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()  // warm-up
    var best = Double.infinity
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return best
}

@Suite(.serialized, .enabled(if: benchEnabled)) struct LanguageBenchmarks {
    @Test(arguments: ["bytelevel", "gpt2", "bytefallback"])
    func tokenizerEncodingSpeed(name: String) throws {
        let tok = try fixtureTokenizer(name)
        let texts = try TokenizerCases.load().texts
        var text = ""
        while text.utf8.count < 1 << 20 { text += texts.joined(separator: " ") + "\n" }
        // Sentencepiece-style tokenizers merge over whole lines (no pre-tokenizer): encode line by line.
        let lines = text.split(separator: "\n").map(String.init)
        var count = 0
        let s = try bestSeconds(2) { count = lines.reduce(0) { $0 + tok.encode($1).count } }
        if name == "bytelevel" {
            let split = try bestSeconds(2) {
                _ = lines.reduce(0) { $0 + BuiltinSplitPattern.llama3.split($1).count }
            }
            print(
                "bench llama3 split scanner alone: \(String(format: "%.2f", Double(text.utf8.count) / split / 1e6)) MB/s"
            )
        }
        tok.wordCacheCapacity = 0
        let cold = try bestSeconds(1) { _ = lines.reduce(0) { $0 + tok.encode($1).count } }
        print(
            "bench tokenizer \(name): \(String(format: "%.2f", Double(text.utf8.count) / s / 1e6)) MB/s with the word cache (repetitive text), "
                + "\(String(format: "%.2f", Double(text.utf8.count) / cold / 1e6)) MB/s without (\(count) tokens from \(text.utf8.count) bytes)"
        )
    }

    func benchModel(vocab: Int = 4096) throws -> LlamaForCausalLM {
        let c = LlamaConfig(
            vocabSize: vocab, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4,
            numAttentionHeads: 8, numKeyValueHeads: 4)
        let m = try LlamaForCausalLM(config: c, seed: 1)
        m.eval()
        return m
    }

    @Test func generationStepBreakdown() throws {
        let m = try benchModel()
        let cache = KVCache(layers: 4)
        _ = try noGrad {
            try m.hiddenStates(
                DecoderInput(tokens: IndexTensor(shape: [1, 64], values: (0..<64).map { $0 })), cache: cache)
        }
        let x = Tensor.normal([1, 1, 256], generator: &benchGen)
        let layer = m.model.layers[0]
        let s1 = try bestSeconds(20) { _ = try noGrad { try layer.mlp(x) } }
        let s2 = try bestSeconds(20) { _ = try noGrad { try layer.selfAttn.query(x) } }
        let s3 = try bestSeconds(20) {
            _ = try noGrad { try rmsNorm(x, weight: layer.inputLayernorm.weight.data) }
        }
        let s4 = try bestSeconds(20) { _ = try noGrad { try m.logits(hidden: x) } }
        let k = Tensor.normal([1, 4, 64, 32], generator: &benchGen)
        let s5 = try bestSeconds(20) {
            _ = try Tensor.concatenate([k, k.narrow(axis: 2, start: 0, length: 1)], axis: 2)
        }
        let s6 = try bestSeconds(20) {
            _ = try m.model.rotary.tables(positions: IndexTensor(shape: [1, 1], values: [64]))
        }
        print(
            "bench step parts (ms): mlp \(s1 * 1e3), q_proj \(s2 * 1e3), rmsnorm \(s3 * 1e3), lm_head \(s4 * 1e3), cache concat \(s5 * 1e3), rope tables \(s6 * 1e3)"
        )
    }

    @Test func decoderStepBreakdown() throws {
        let m = try benchModel(vocab: 512)
        let ids = try IndexTensor(shape: [1, 1024], values: (0..<1024).map { ($0 * 13) % 512 })
        let docs = try IndexTensor(shape: [1, 1024], values: (0..<1024).map { $0 / 128 })
        let fwd = try bestSeconds(2) {
            _ = try noGrad { try m.hiddenStates(DecoderInput(tokens: ids, documentIds: docs)) }
        }
        let x = Tensor.normal([1, 1024, 8, 32], generator: &benchGen).requiringGradient()
        let (c, sn) = try m.model.rotary.tables(positions: positionIds(documentIds: docs))
        let rope = try bestSeconds(3) {
            _ = try gradient(of: { try RotaryEmbedding.apply($0[0], cos: c, sin: sn).sum() }, at: [x])
        }
        let w = Tensor.normal([256, 256], generator: &benchGen)
        let h = Tensor.normal([1024, 256], generator: &benchGen)
        let proj = try bestSeconds(3) {
            _ = try gradient(of: { try linear($0[0], weight: $0[1]).sum() }, at: [h, w])
        }
        print(
            "bench decoder T=1024: forward \(String(format: "%.1f", fwd * 1e3)) ms; rope fwd+bwd on q \(String(format: "%.2f", rope * 1e3)) ms; one 256x256 projection fwd+bwd \(String(format: "%.2f", proj * 1e3)) ms"
        )
    }

    @Test func generationTokensPerSecond() throws {
        let m = try benchModel()
        let prompt = (0..<32).map { ($0 * 37) % 4096 }
        for batch in [1, 4] {
            let prompts = (0..<batch).map { b in Array(prompt.dropFirst(b)) }
            let s = try bestSeconds(2) {
                _ = try m.generate(prompts: prompts, options: .greedy(maxNewTokens: 64))
            }
            print(
                "bench generate (hidden 256, 4 layers, vocab 4096) batch \(batch): \(String(format: "%.1f", Double(64 * batch) / s)) tokens/s"
            )
        }
        // Without the cache: a full forward over the growing sequence per token.
        let s = try bestSeconds(1) {
            var seq = prompt
            for _ in 0..<64 {
                let h = try noGrad {
                    try m.hiddenStates(DecoderInput(tokens: IndexTensor(shape: [1, seq.count], values: seq)))
                }
                seq.append(
                    try m.logits(hidden: h, at: IndexTensor([seq.count - 1])).argmax(axis: 1).values[0])
            }
        }
        print("bench generate without cache batch 1: \(String(format: "%.1f", 64 / s)) tokens/s")
    }

    @Test func packedAttentionCostsLessThanCausal() throws {
        let (t, heads, d) = (2048, 8, 64)
        let q = randomTensor([1, heads, t, d], seed: 1), k = randomTensor([1, heads / 2, t, d], seed: 2),
            v = randomTensor([1, heads / 2, t, d], seed: 3)
        let docs = try IndexTensor(shape: [1, t], values: (0..<t).map { $0 / 256 })
        let causal = try bestSeconds(3) { _ = try scaledDotProductAttention(q: q, k: k, v: v, mask: .causal) }
        let packed = try bestSeconds(3) {
            _ = try scaledDotProductAttention(q: q, k: k, v: v, mask: .documents(docs, causal: true))
        }
        print(
            "bench attention T=\(t) 8 heads (4 KV) d=64: causal \(String(format: "%.2f", causal * 1e3)) ms, 8 packed documents \(String(format: "%.2f", packed * 1e3)) ms (\(String(format: "%.2f", causal / packed))x)"
        )
        #expect(packed < causal)
        // The whole decoder: forward + backward of one row.
        let m = try benchModel(vocab: 512)
        let ids = try IndexTensor(shape: [1, 1024], values: (0..<1024).map { ($0 * 13) % 512 })
        let ddocs = try IndexTensor(shape: [1, 1024], values: (0..<1024).map { $0 / 128 })
        func step(_ docs: IndexTensor?) throws {
            _ = try valueAndGradient(at: m.namedParameters()) {
                try m.nextTokenLoss(
                    hidden: m.hiddenStates(DecoderInput(tokens: ids, documentIds: docs)), labels: ids,
                    documentIds: docs
                ).meanLoss
            }
        }
        let sc = try bestSeconds(2) { try step(nil) }
        let sp = try bestSeconds(2) { try step(ddocs) }
        print(
            "bench decoder step T=1024 (hidden 256, 4 layers): causal \(String(format: "%.1f", sc * 1e3)) ms, 8 packed documents \(String(format: "%.1f", sp * 1e3)) ms; \(String(format: "%.0f", 1024 / sp)) tokens/s"
        )
    }
}

nonisolated(unsafe) private var benchGen = RandomGenerator(seed: 5)
