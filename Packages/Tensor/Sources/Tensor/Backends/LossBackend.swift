/// Loss (fused cross-entropy), embedding, indexing and dropout kernels.
/// Requirements are implemented in `CPUBackend+Loss.swift` and `ReferenceBackend+Loss.swift`.
///
/// Index arguments are `Int` element indices that the calling op has already checked to be in
/// range; kernels do not validate them.
public protocol LossBackend {
    /// Fused cross-entropy forward over `rows` contiguous rows of `classes` logits.
    ///
    /// For a row r whose target t is not `ignoreIndex`: `lse[r] = log(sum_j exp(x[r, j]))` and
    /// `loss[r] = (1 - eps) * (lse[r] - x[r, t]) + eps * (lse[r] - mean_j x[r, j])` (eps is
    /// `labelSmoothing`). Ignored rows get `lse[r] = 0` and `loss[r] = 0`. Nothing else is stored.
    func crossEntropyForward(
        logits: ConstPtr, targets: UnsafePointer<Int>, rows: Int, classes: Int, ignoreIndex: Int,
        labelSmoothing: Float, lse: MutPtr, loss: MutPtr)

    /// Writes the gradient of `gradLoss * sum_r loss[r] + gradZ * zLossCoefficient * sum_r lse[r]^2`
    /// (sums over supervised rows) with respect to the logits:
    /// `dlogits[r, j] = softmax(x)[r, j] * (gradLoss + 2 * zLossCoefficient * lse[r] * gradZ)
    ///  - gradLoss * ((1 - eps) * [j == t] + eps / classes)`, and 0 on ignored rows.
    /// `lse` is what `crossEntropyForward` wrote.
    func crossEntropyBackward(
        logits: ConstPtr, targets: UnsafePointer<Int>, lse: ConstPtr, rows: Int, classes: Int,
        ignoreIndex: Int,
        labelSmoothing: Float, gradLoss: Float, gradZ: Float, zLossCoefficient: Float, dlogits: MutPtr)

    /// `out[o, i, :] = x[o, indices[i], :]` for x of `[outer, n, inner]` and out of `[outer, k, inner]`
    /// (index_select; embedding lookup with outer = 1).
    func indexSelect(
        _ x: ConstPtr, outer: Int, n: Int, inner: Int, indices: UnsafePointer<Int>, k: Int, _ out: MutPtr)

    /// `dst[o, indices[i], :] += src[o, i, :]` for src of `[outer, k, inner]` and dst of
    /// `[outer, n, inner]` (index_add; repeated indices sum). The adjoint of `indexSelect`.
    func indexAdd(
        _ src: ConstPtr, outer: Int, k: Int, inner: Int, indices: UnsafePointer<Int>, n: Int, _ dst: MutPtr)

    /// torch.gather along `axis`: for every multi-index c of `indexShape`, `out[c] = src[c']` where
    /// c' is c with `c'[axis] = index[c]`; src is read through `srcStrides`, out is contiguous.
    func gatherAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ out: MutPtr)

    /// torch.scatter_add along `axis`, in place: for every multi-index c of `indexShape`,
    /// `dst[c'] += src[c]` where c' is c with `c'[axis] = index[c]` (both read through their strides).
    func scatterAddAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ dst: MutPtr, dstStrides: [Int])

    /// Inverted dropout with a counter-based mask: `y[i] = u_i >= p ? x[i] / (1 - p) : 0`, where
    /// u_i is element i of `Tensor.uniform` drawn from `RandomGenerator(seed: seed, offset: offset)`
    /// (Philox block `offset + i / 4`, word `i % 4`, top 24 bits). The mask depends only on
    /// (seed, offset, i), so the backward pass regenerates it and results match on any thread
    /// count. 0 < p < 1.
    func philoxDropout(_ x: ConstPtr, _ y: MutPtr, count: Int, p: Float, seed: UInt64, offset: UInt64)
}
