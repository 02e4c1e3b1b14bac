import Foundation
import Tensor

/// The next-token cross-entropy of a batch, left as sums so that a batch split into micro-batches
/// (or across processes) is averaged over all its supervised tokens exactly: add the sums and the
/// counts, then divide once.
public struct NextTokenLoss {
    /// Scalar, differentiable: sum of cross-entropy over the supervised tokens.
    public var lossSum: Tensor
    /// Scalar, differentiable: `coefficient * sum(logsumexp^2)` over the supervised tokens (0 without z-loss),
    /// from the same fused kernel.
    public var zLossSum: Tensor
    /// Number of supervised tokens.
    public var count: Int

    /// `lossSum / count` (0 with a zero gradient when nothing is supervised).
    public var meanLoss: Tensor { count == 0 ? lossSum * 0 : lossSum / Float(count) }
    /// `zLossSum / count` (0 when nothing is supervised).
    public var meanZLoss: Tensor { count == 0 ? zLossSum * 0 : zLossSum / Float(count) }

    /// `(lossSum + zLossSum) / denominator`: the term to differentiate when `denominator` is the
    /// supervised-token count of the whole (global) batch. A denominator of 0 gives 0.
    public func total(over denominator: Int) throws -> Tensor {
        let s = try lossSum + zLossSum
        return denominator == 0 ? s * 0 : s / Float(denominator)
    }
}

/// The target of each position: the label of the next position in the same document, or
/// `ignoreIndex` at a row's last position, before a document boundary, and where the next label is
/// ignored (image tokens, padding, prompt tokens).
/// - Parameters:
///   - labels: `[B, T]` token ids, `ignoreIndex` where nothing is supervised (HF `labels`, unshifted).
///   - documentIds: `[B, T]` for packed rows, or nil.
/// - Returns: `[B, T]`.
public func nextTokenTargets(labels: IndexTensor, documentIds: IndexTensor? = nil, ignoreIndex: Int = -100)
    throws -> IndexTensor
{
    guard labels.shape.count == 2 else {
        throw TensorError("next_token_loss", "labels must be [B, T], got \(labels.shape)")
    }
    if let d = documentIds, d.shape != labels.shape {
        throw TensorError("next_token_loss", "documentIds \(d.shape) must match labels \(labels.shape)")
    }
    let (b, t) = (labels.shape[0], labels.shape[1])
    guard t > 0 else {
        throw TensorError("next_token_loss", "labels \(labels.shape) have no positions (T = 0)")
    }
    var out = [Int](repeating: ignoreIndex, count: b * t)
    for r in 0..<b {
        for i in 0..<(t - 1) {
            let j = r * t + i
            if let d = documentIds, d.values[j] != d.values[j + 1] { continue }
            out[j] = labels.values[j + 1]
        }
    }
    return try IndexTensor(shape: [b, t], values: out)
}

extension LlamaForCausalLM {
    /// Next-token cross-entropy from final hidden states; the vocabulary projection runs only at the
    /// supervised positions (image tokens, padding and prompts cost nothing there).
    /// - Parameters:
    ///   - hidden: `[B, T, hidden]` from `hiddenStates`.
    ///   - labels: `[B, T]` unshifted labels (`ignoreIndex` where unsupervised), as HF `labels`.
    ///   - documentIds: `[B, T]` of a packed row: the last token of a document predicts nothing.
    ///   - zLossCoefficient: weight of the z-loss (0 disables it).
    /// - Returns: the sums and the supervised count.
    /// - Throws: `TensorError` for shape mismatches or labels outside the vocabulary.
    public func nextTokenLoss(
        hidden: Tensor, labels: IndexTensor, documentIds: IndexTensor? = nil, ignoreIndex: Int = -100,
        zLossCoefficient: Float = 0
    ) throws -> NextTokenLoss {
        guard hidden.rank == 3, Array(hidden.shape.prefix(2)) == labels.shape else {
            throw TensorError(
                "next_token_loss", "hidden \(hidden.shape) does not match labels \(labels.shape)")
        }
        let targets = try nextTokenTargets(labels: labels, documentIds: documentIds, ignoreIndex: ignoreIndex)
        let rows = targets.values.indices.filter { targets.values[$0] != ignoreIndex }
        if rows.isEmpty {
            let zero = try hidden.sum() * 0
            return NextTokenLoss(lossSum: zero, zLossSum: zero, count: 0)
        }
        let logits = try self.logits(hidden: hidden, at: IndexTensor(rows))
        let parts = try crossEntropyParts(
            logits: logits, targets: IndexTensor(rows.map { targets.values[$0] }), ignoreIndex: ignoreIndex,
            zLossCoefficient: zLossCoefficient)
        return NextTokenLoss(lossSum: parts.lossSum, zLossSum: parts.zLossSum, count: parts.count)
    }

    /// Per-token next-token losses (no gradient), `ignoreIndex` positions reported as nil.
    /// - Returns: `[B * T]` values in row-major order.
    public func nextTokenLosses(
        hidden: Tensor, labels: IndexTensor, documentIds: IndexTensor? = nil, ignoreIndex: Int = -100
    ) throws -> [Float?] {
        try noGrad {
            let targets = try nextTokenTargets(
                labels: labels, documentIds: documentIds, ignoreIndex: ignoreIndex)
            let logp = try logits(hidden: hidden).logSoftmax(axis: -1)
            let v = logp.shape[2]
            return logp.withUnsafeBufferPointer { p in
                targets.values.enumerated().map { i, t in t == ignoreIndex ? nil : -p[i * v + t] }
            }
        }
    }
}
