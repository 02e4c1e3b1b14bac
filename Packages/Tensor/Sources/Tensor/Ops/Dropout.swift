import TensorKernels

/// Inverted dropout (PyTorch `F.dropout`): in training, each element is kept with probability
/// `1 - p` and scaled by `1 / (1 - p)`, otherwise zeroed; in evaluation (or with p = 0) it is the
/// identity.
///
/// The mask is element i of `Tensor.uniform` drawn from `generator` compared with p (kept when
/// u >= p), so it depends only on the generator's state and never on the thread count. The
/// generator advances by the blocks drawn (as `Tensor.uniform(x.shape, generator:)` would); it
/// is left untouched when nothing is drawn (evaluation, p = 0, p = 1). Backward regenerates the
/// same mask instead of storing it.
/// - Parameters:
///   - x: any shape.
///   - p: drop probability in [0, 1]; p = 1 gives zeros.
/// - Returns: `x.shape`.
/// - Throws: `TensorError` when p is outside [0, 1].
public func dropout(_ x: Tensor, p: Float, training: Bool, generator: inout RandomGenerator) throws -> Tensor
{
    let out = try dropout(x, p: p, training: training, seed: generator.seed, offset: generator.offset)
    if training && p > 0 && p < 1 { generator.offset &+= UInt64((x.count + 3) / 4) }
    return out
}

/// Dropout with an explicit Philox key and block offset: deterministic, so a block run twice
/// (activation checkpointing) draws the same mask both times. Same semantics as
/// `dropout(_:p:training:generator:)` with `RandomGenerator(seed: seed, offset: offset)`.
/// - Returns: `x.shape`.
/// - Throws: `TensorError` when p is outside [0, 1].
public func dropout(_ x: Tensor, p: Float, training: Bool, seed: UInt64, offset: UInt64) throws -> Tensor {
    guard p >= 0, p <= 1 else {
        throw TensorError("dropout", "probability must be in [0, 1], got \(p) (input \(fmt(x.shape)))")
    }
    guard training, p > 0 else { return x }
    if p == 1 { return x * 0 }
    let n = x.count
    let y = Tensor(uninitializedShape: x.shape)
    if n > 0 {
        Backends.current.philoxDropout(x.ptr, y.storage.pointer, count: n, p: p, seed: seed, offset: offset)
    }
    return Tensor.record(y, op: "dropout", inputs: [x]) { g in
        let dx = Tensor(uninitializedShape: g.shape)
        if n > 0 {
            Backends.current.philoxDropout(
                g.ptr, dx.storage.pointer, count: n, p: p, seed: seed, offset: offset)
        }
        return [dx]
    }
}
