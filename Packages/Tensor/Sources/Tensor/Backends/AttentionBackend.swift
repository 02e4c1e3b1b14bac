import TensorKernels

/// Blocked scaled-dot-product attention, forward and backward.
/// Requirements are implemented in `CPUBackend+Attention.swift` and `ReferenceBackend+Attention.swift`.
///
/// Layouts (contiguous): q `[B, Hq, Tq, D]`, k `[B, Hkv, Tk, D]`, v `[B, Hkv, Tk, Dv]`,
/// out `[B, Hq, Tq, Dv]`, logsumexp `[B, Hq, Tq]`; query head h uses kv head `h / (Hq / Hkv)`.
/// Visibility of key j to query i follows `AttentionMaskSpec`; rows with no visible key give output
/// 0, logsumexp `-inf` and zero gradients.
public protocol AttentionBackend {
    /// `out = softmax(scale * q k^T, masked) v` and the per-row logsumexp of the masked, scaled scores.
    func attentionForward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, dims: AttentionDims, mask: AttentionMaskSpec, out: MutPtr,
        logSumExp: MutPtr)

    /// Gradients of `attentionForward` given its saved `out` and `logSumExp` and the output gradient:
    /// writes all of `dq`, `dk`, `dv` (GQA: dk/dv summed over the query heads of each group).
    func attentionBackward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, out: ConstPtr, logSumExp: ConstPtr, dOut: ConstPtr,
        dims: AttentionDims, mask: AttentionMaskSpec, dq: MutPtr, dk: MutPtr, dv: MutPtr)
}
