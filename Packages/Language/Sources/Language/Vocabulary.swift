import Foundation
import Tensor

extension LlamaForCausalLM {
    /// Resizes the vocabulary (HF `resize_token_embeddings`): `model.embed_tokens.weight` and
    /// `lm_head.weight` get `newSize` rows; rows beyond the old vocabulary are set to the mean of the
    /// old rows (so new tokens start as an "average" token and the output distribution barely moves).
    /// Tied embeddings stay tied (one parameter). Shrinking drops the last rows.
    /// - Throws: `TensorError` when `newSize` is not positive.
    public func resizeVocabulary(to newSize: Int) throws {
        guard newSize > 0 else {
            throw TensorError("resize_token_embeddings", "new size must be positive, got \(newSize)")
        }
        func resized(_ w: Tensor) throws -> Tensor {
            let old = w.shape[0]
            if newSize <= old { return try w.narrow(axis: 0, start: 0, length: newSize) }
            let mean = try w.mean(axis: 0, keepDim: true)
            return try Tensor.concatenate([w, mean.broadcast(to: [newSize - old, w.shape[1]])], axis: 0)
        }
        try noGrad {
            model.embedTokens.weight.data = try resized(model.embedTokens.weight.data)
            if let lmHead { lmHead.weight.data = try resized(lmHead.weight.data) }
        }
        setVocabSize(newSize)
    }
}
