import Foundation
import Language
import Tensor

/// Tokenizer encoding MB/s (the committed byte-level BPE fixture tokenizer on ~1 MB of its test
/// texts; the word cache is off, so every word is merged) and generation tokens/s with the KV cache
/// (hidden 256, 4 layers, vocab 4096, 64 new tokens greedily), next to a full recompute per token;
/// attention over a packed row of 8 documents next to one causal row of the same length (T 2048,
/// 8 heads, 4 KV heads, d 64): the document mask must make the packed row cheaper.
func languageSuite(_ report: Report, repeats: Int) throws {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "Tests/Fixtures/language")
    let tokenizer = try Tokenizer(contentsOf: fixtures.appendingPathComponent("tokenizer_bytelevel.json"))
    tokenizer.wordCacheCapacity = 0
    let cases =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: fixtures.appendingPathComponent("tokenizer_cases.json"))) as! [String: Any]
    let texts = cases["texts"] as! [String]
    var text = ""
    while text.utf8.count < 1 << 20 { text += texts.joined(separator: " ") + "\n" }
    let lines = text.split(separator: "\n").map(String.init)
    _ = report.add(
        "language", "tokenizer encode (byte-level BPE, no word cache)", unit: "MB/s",
        measure(repeats: repeats, warmup: 1, work: Double(text.utf8.count) * 1e-6) {
            _ = lines.reduce(0) { $0 + tokenizer.encode($1).count }
        })
    let config = LlamaConfig(
        vocabSize: 4096, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 8,
        numKeyValueHeads: 4)
    let model = try LlamaForCausalLM(config: config, seed: 1)
    model.eval()
    let prompt = (0..<32).map { ($0 * 37) % 4096 }
    var cached: Row?
    for batch in [1, 4] {
        let prompts = (0..<batch).map { b in Array(prompt.dropFirst(b)) }
        let row = report.add(
            "language", "generate with KV cache, batch \(batch)", unit: "tokens/s",
            try measure(repeats: repeats, warmup: 1, work: Double(64 * batch)) {
                _ = try model.generate(prompts: prompts, options: .greedy(maxNewTokens: 64))
            })
        if batch == 1 { cached = row }
    }
    _ = report.add(
        "language", "generate by full recompute, batch 1", unit: "tokens/s",
        try measure(repeats: max(1, repeats / 3), warmup: 0, work: 64) {
            var seq = prompt
            for _ in 0..<64 {
                let h = try noGrad {
                    try model.hiddenStates(
                        DecoderInput(tokens: IndexTensor(shape: [1, seq.count], values: seq)))
                }
                seq.append(
                    try model.logits(hidden: h, at: IndexTensor([seq.count - 1])).argmax(axis: 1).values[0])
            }
        }, baseline: cached)

    var g = RandomGenerator(seed: 5)
    let (t, heads, d) = (2048, 8, 64)
    let q = Tensor.uniform([1, heads, t, d], low: -1, high: 1, generator: &g)
    let k = Tensor.uniform([1, heads / 2, t, d], low: -1, high: 1, generator: &g)
    let v = Tensor.uniform([1, heads / 2, t, d], low: -1, high: 1, generator: &g)
    let docs = try IndexTensor(shape: [1, t], values: (0..<t).map { $0 / 256 })
    let causal = report.add(
        "language", "attention T=2048, one causal row", unit: "rows/s",
        try measure(repeats: repeats, warmup: 1, work: 1) {
            _ = try scaledDotProductAttention(q: q, k: k, v: v, mask: .causal)
        })
    _ = report.add(
        "language", "attention T=2048, 8 packed documents", unit: "rows/s",
        try measure(repeats: repeats, warmup: 1, work: 1) {
            _ = try scaledDotProductAttention(q: q, k: k, v: v, mask: .documents(docs, causal: true))
        }, baseline: causal)
}
