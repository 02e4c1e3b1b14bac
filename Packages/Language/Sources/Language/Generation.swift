import Foundation
import Tensor

/// How `generate` picks each next token.
public struct GenerationOptions: Sendable {
    /// Tokens to generate at most (per prompt).
    public var maxNewTokens: Int
    /// 0 (or `greedy`) takes the most likely token; otherwise logits are divided by it before sampling.
    public var temperature: Float
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float
    /// Generation of a row stops after one of these (it is included in the output).
    public var stopTokens: Set<Int>
    /// Seeds the sampler (the same seed gives the same tokens).
    public var seed: UInt64

    public init(
        maxNewTokens: Int = 32, temperature: Float = 0, topK: Int = 0, topP: Float = 1,
        stopTokens: Set<Int> = [], seed: UInt64 = 0
    ) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.stopTokens = stopTokens
        self.seed = seed
    }

    /// Argmax decoding.
    public static func greedy(maxNewTokens: Int, stopTokens: Set<Int> = []) -> GenerationOptions {
        GenerationOptions(maxNewTokens: maxNewTokens, stopTokens: stopTokens)
    }
}

/// Picks a token from one row of logits with temperature, top-k and top-p (HF's order: temperature,
/// then top-k, then top-p), drawing from `generator`.
public func sampleToken(logits: [Float], options: GenerationOptions, generator: inout RandomGenerator) -> Int
{
    if options.temperature <= 0 {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best
    }
    var order = Array(logits.indices).sorted {
        logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1)
    }
    if options.topK > 0 && options.topK < order.count { order.removeLast(order.count - options.topK) }
    let t = Double(options.temperature)
    let top = Double(logits[order[0]]) / t
    var probs = order.map { Foundation.exp(Double(logits[$0]) / t - top) }
    let z = probs.reduce(0, +)
    probs = probs.map { $0 / z }
    if options.topP < 1 {
        var cum = 0.0, keep = 0
        while keep < probs.count {
            cum += probs[keep]
            keep += 1
            if cum >= Double(options.topP) { break }
        }
        order.removeLast(order.count - keep)
        probs.removeLast(probs.count - keep)
        let z2 = probs.reduce(0, +)
        probs = probs.map { $0 / z2 }
    }
    let u = Double(Tensor.uniform([1], generator: &generator).scalars[0])
    var cum = 0.0
    for (i, p) in probs.enumerated() {
        cum += p
        if u < cum { return order[i] }
    }
    return order[order.count - 1]
}

extension LlamaForCausalLM {
    /// Generates continuations of a batch of prompts with a KV cache: the prompts are left-padded to
    /// one length (padding hidden from attention, positions counting real tokens only), run once, then
    /// one token per step is appended to every row.
    /// - Parameters:
    ///   - prompts: token ids of each prompt (lengths may differ).
    ///   - onToken: called with `(row, token)` for each new token as soon as it is sampled, before the
    ///     next decoding step runs: step by step, and within a step in row order. Row r's calls give
    ///     exactly the returned `[r]`, in order (its stop token included). An error it throws stops
    ///     generation and is rethrown.
    /// - Returns: the new tokens of each row (stopping after a stop token or `maxNewTokens`).
    /// - Throws: `TensorError` for an empty prompt or out-of-range ids; what `onToken` throws.
    public func generate(
        prompts: [[Int]], options: GenerationOptions, onToken: (_ row: Int, _ token: Int) throws -> Void = { _, _ in }
    ) throws -> [[Int]] {
        let embeddings = try prompts.map { p -> Tensor in
            guard !p.isEmpty else { throw TensorError("generate", "empty prompt") }
            return try embedding(IndexTensor(p), weight: model.embedTokens.weight.data)
        }
        return try generate(promptEmbeddings: embeddings, options: options, onToken: onToken)
    }

    /// Generates from prompts given as input embeddings (for example text embeddings with image
    /// features placed at the image-token positions).
    /// - Parameters:
    ///   - promptEmbeddings: one `[T_i, hidden]` tensor per prompt.
    ///   - onToken: called with `(row, token)` for each new token as it is sampled (as in
    ///     `generate(prompts:options:onToken:)`).
    /// - Returns: the new tokens of each row.
    public func generate(
        promptEmbeddings: [Tensor], options: GenerationOptions,
        onToken: (_ row: Int, _ token: Int) throws -> Void = { _, _ in }
    ) throws -> [[Int]] {
        try noGrad {
            let b = promptEmbeddings.count
            guard b > 0 else { return [] }
            let c = config.hiddenSize
            for e in promptEmbeddings where e.rank != 2 || e.shape[1] != c || e.shape[0] == 0 {
                throw TensorError("generate", "each prompt embedding must be [T > 0, \(c)], got \(e.shape)")
            }
            let t = promptEmbeddings.map { $0.shape[0] }.max()!
            var rows: [Tensor] = []
            var padding: [Int] = []
            for e in promptEmbeddings {
                let pad = t - e.shape[0]
                rows.append(pad == 0 ? e : try Tensor.concatenate([Tensor.zeros([pad, c]), e], axis: 0))
                padding += Array(repeating: 0, count: pad) + Array(repeating: 1, count: e.shape[0])
            }
            let cache = KVCache(layers: config.numHiddenLayers)
            var generator = RandomGenerator(seed: options.seed)
            var out = Array(repeating: [Int](), count: b)
            var done = Array(repeating: options.maxNewTokens <= 0, count: b)
            var h = try hiddenStates(
                DecoderInput(
                    embeddings: Tensor.stack(rows), keyPadding: IndexTensor(shape: [b, t], values: padding)),
                cache: cache)
            while !done.allSatisfy({ $0 }) {
                let last = try h.narrow(axis: 1, start: h.shape[1] - 1, length: 1)
                let logits = try self.logits(hidden: last).reshaped([b, config.vocabSize])
                var next = [Int](repeating: 0, count: b)
                logits.withUnsafeBufferPointer { p in
                    let v = config.vocabSize
                    for r in 0..<b where !done[r] {
                        next[r] = sampleToken(
                            logits: Array(p[(r * v)..<((r + 1) * v)]), options: options, generator: &generator
                        )
                    }
                }
                for r in 0..<b where !done[r] {
                    out[r].append(next[r])
                    try onToken(r, next[r])
                    if options.stopTokens.contains(next[r]) || out[r].count >= options.maxNewTokens {
                        done[r] = true
                    }
                }
                if done.allSatisfy({ $0 }) { break }
                h = try hiddenStates(
                    DecoderInput(tokens: IndexTensor(shape: [b, 1], values: next)), cache: cache)
            }
            return out
        }
    }
}
