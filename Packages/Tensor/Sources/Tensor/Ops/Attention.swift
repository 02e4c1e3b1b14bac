import Foundation
import TensorKernels

/// Which keys each query may attend to in `scaledDotProductAttention`. The conditions combine (a key
/// is visible when all present conditions allow it):
///
/// - causal: query i sits at absolute position `queryOffset + i` (by default `Tk - Tq + i`, so that
///   queries appended to a KV cache see the whole cache and themselves) and sees keys `j <= ` that.
/// - documents: `documentIds` `[B, Tk]` gives each key position a document id; a query sees only keys
///   of its own document. A query's id is read at its absolute position (or from `queryDocumentIds`
///   `[B, Tq]`, for cross attention). With `causal` this is the packed-sequence mask (MM1): many short
///   documents in one row, each attending causally within itself.
/// - key padding: `keyPadding` `[B, Tk]`, nonzero where the key is real; zero keys are hidden.
///
/// ```swift
/// let mask = try AttentionMask.causal.and(.documents(ids)).and(.keyPadding(valid))
/// ```
public struct AttentionMask: Sendable, Equatable {
    /// Hide keys after each query's absolute position.
    public var isCausal: Bool
    /// Absolute position of query 0; nil means `Tk - Tq`.
    public var queryOffset: Int?
    /// Document id of every key position, `[B, Tk]`.
    public var documentIds: IndexTensor?
    /// Document id of every query, `[B, Tq]`; nil reads `documentIds` at the query positions.
    public var queryDocumentIds: IndexTensor?
    /// `[B, Tk]`: nonzero for keys that may be attended to (padding is 0).
    public var keyPadding: IndexTensor?

    public init(
        causal: Bool = false, queryOffset: Int? = nil, documentIds: IndexTensor? = nil,
        queryDocumentIds: IndexTensor? = nil, keyPadding: IndexTensor? = nil
    ) {
        self.isCausal = causal
        self.queryOffset = queryOffset
        self.documentIds = documentIds
        self.queryDocumentIds = queryDocumentIds
        self.keyPadding = keyPadding
    }

    /// Every query sees every key.
    public static var none: AttentionMask { AttentionMask() }
    /// Causal, with queries aligned to the end of the keys (`Tk - Tq + i`).
    public static var causal: AttentionMask { AttentionMask(causal: true) }
    /// Causal with query 0 at absolute position `queryOffset`.
    public static func causal(queryOffset: Int) -> AttentionMask {
        AttentionMask(causal: true, queryOffset: queryOffset)
    }
    /// Block-diagonal masking by document ids `[B, Tk]` (with `causal`: the packed-sequence mask).
    public static func documents(_ ids: IndexTensor, causal: Bool = false) -> AttentionMask {
        AttentionMask(causal: causal, documentIds: ids)
    }
    /// Hides keys whose flag in `valid` (`[B, Tk]`) is 0.
    public static func keyPadding(_ valid: IndexTensor) -> AttentionMask { AttentionMask(keyPadding: valid) }
    /// Hides keys whose flag is false; `valid` has one row of Tk flags per batch element.
    /// - Throws: `TensorError` when the rows differ in length.
    public static func keyPadding(_ valid: [[Bool]]) throws -> AttentionMask {
        let tk = valid.first?.count ?? 0
        guard valid.allSatisfy({ $0.count == tk }) else {
            throw TensorError("AttentionMask.keyPadding", "rows of different lengths \(valid.map(\.count))")
        }
        return AttentionMask(
            keyPadding: try IndexTensor(shape: [valid.count, tk], values: valid.joined().map { $0 ? 1 : 0 }))
    }

    /// The mask that hides what either mask hides.
    /// - Throws: `TensorError` when both set document ids, or set different query offsets, or key
    ///   paddings of different shapes.
    public func and(_ other: AttentionMask) throws -> AttentionMask {
        let op = "AttentionMask.and"
        var out = self
        out.isCausal = isCausal || other.isCausal
        switch (queryOffset, other.queryOffset) {
        case let (a?, b?) where a != b: throw TensorError(op, "query offsets differ: \(a) vs \(b)")
        default: out.queryOffset = queryOffset ?? other.queryOffset
        }
        if other.documentIds != nil || other.queryDocumentIds != nil {
            guard documentIds == nil && queryDocumentIds == nil else {
                throw TensorError(op, "both masks set document ids")
            }
            out.documentIds = other.documentIds
            out.queryDocumentIds = other.queryDocumentIds
        }
        if let b = other.keyPadding {
            if let a = keyPadding {
                guard a.shape == b.shape else {
                    throw TensorError(op, "key paddings \(fmt(a.shape)) and \(fmt(b.shape)) differ in shape")
                }
                out.keyPadding = IndexTensor(
                    shape: a.shape, unchecked: zip(a.values, b.values).map { $0 != 0 && $1 != 0 ? 1 : 0 })
            } else {
                out.keyPadding = b
            }
        }
        return out
    }

    /// The kernel form for the given sizes.
    func spec(batch: Int, queryLength tq: Int, keyLength tk: Int) throws -> AttentionMaskSpec {
        let op = "scaled_dot_product_attention"
        let offset = queryOffset ?? (tk - tq)
        var spec = AttentionMaskSpec(causal: isCausal, queryOffset: offset)
        if let ids = documentIds {
            guard ids.shape == [batch, tk] else {
                throw TensorError(op, "documentIds \(fmt(ids.shape)) must be [B, Tk] = [\(batch), \(tk)]")
            }
            spec.keyDocuments = ids.values
            if let qids = queryDocumentIds {
                guard qids.shape == [batch, tq] else {
                    throw TensorError(
                        op, "queryDocumentIds \(fmt(qids.shape)) must be [B, Tq] = [\(batch), \(tq)]")
                }
                spec.queryDocuments = qids.values
            } else {
                guard offset >= 0, offset + tq <= tk else {
                    throw TensorError(
                        op,
                        "queries at positions \(offset)..<\(offset + tq) lie outside the \(tk) document ids; pass queryDocumentIds"
                    )
                }
                var q = [Int](repeating: 0, count: batch * tq)
                for b in 0..<batch { for i in 0..<tq { q[b * tq + i] = ids.values[b * tk + offset + i] } }
                spec.queryDocuments = q
            }
        } else if queryDocumentIds != nil {
            throw TensorError(op, "queryDocumentIds needs documentIds for the keys")
        }
        if let valid = keyPadding {
            guard valid.shape == [batch, tk] else {
                throw TensorError(op, "keyPadding \(fmt(valid.shape)) must be [B, Tk] = [\(batch), \(tk)]")
            }
            spec.keyValid = valid.values.map { $0 != 0 }
        }
        return spec
    }
}

/// Scaled dot-product attention, `softmax(scale * q k^T + mask) v`, as
/// `torch.nn.functional.scaled_dot_product_attention`, with grouped-query heads: query head h uses
/// key/value head `h / (Hq / Hkv)`.
///
/// The CPU kernel is flash-attention style: blocked over queries and keys with an online softmax,
/// skipping blocks the mask hides entirely (so a packed row of short documents costs less than one
/// long causal sequence), and saving only the per-row logsumexp for its own backward.
///
/// Rows whose mask hides every key (for example padding queries) produce output 0 and pass gradient
/// 0 to q, k and v; PyTorch produces NaN there.
/// - Parameters:
///   - q: `[B, Hq, Tq, D]`
///   - k: `[B, Hkv, Tk, D]`
///   - v: `[B, Hkv, Tk, Dv]`
///   - mask: which keys each query sees (see `AttentionMask`).
///   - scale: multiplies `q . k`; default `1 / sqrt(D)`.
/// - Returns: `[B, Hq, Tq, Dv]`.
/// - Throws: `TensorError` for inputs that are not 4-D, mismatched batch/length/head sizes, Hq not a
///   multiple of Hkv, or mask tensors of the wrong shape.
public func scaledDotProductAttention(
    q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask = .none, scale: Float? = nil
) throws -> Tensor {
    let op = "scaled_dot_product_attention"
    let shapes = "q \(fmt(q.shape)), k \(fmt(k.shape)), v \(fmt(v.shape))"
    guard q.rank == 4, k.rank == 4, v.rank == 4 else {
        throw TensorError(op, "q, k and v must be [B, H, T, D]; got \(shapes)")
    }
    let (b, hq, tq, hd) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (hkv, tk, vd) = (k.shape[1], k.shape[2], v.shape[3])
    guard k.shape[0] == b, v.shape[0] == b else { throw TensorError(op, "batch sizes differ: \(shapes)") }
    guard v.shape[1] == hkv, v.shape[2] == tk else {
        throw TensorError(op, "k and v must have the same heads and length: \(shapes)")
    }
    guard k.shape[3] == hd else { throw TensorError(op, "q and k head dimensions differ: \(shapes)") }
    guard hd > 0 else { throw TensorError(op, "head dimension must be positive: \(shapes)") }
    guard hkv > 0, hq % hkv == 0 else {
        throw TensorError(op, "query heads (\(hq)) must be a multiple of key/value heads (\(hkv)): \(shapes)")
    }
    let s = scale ?? 1 / Float(hd).squareRoot()
    guard s.isFinite else { throw TensorError(op, "scale must be finite, got \(s)") }
    let spec = try mask.spec(batch: b, queryLength: tq, keyLength: tk)
    let dims = AttentionDims(
        batch: b, queryHeads: hq, kvHeads: hkv, queryLength: tq, keyLength: tk, headDim: hd, valueDim: vd,
        scale: s)
    try requireBLAS(op)
    let out = Tensor(uninitializedShape: [b, hq, tq, vd])
    let lse = Tensor(uninitializedShape: [b, hq, tq])
    Backends.current.attentionForward(
        q: q.ptr, k: k.ptr, v: v.ptr, dims: dims, mask: spec, out: out.storage.pointer,
        logSumExp: lse.storage.pointer)
    return Tensor.record(out, op: op, inputs: [q, k, v]) { g in
        let dq = Tensor(uninitializedShape: q.shape)
        let dk = Tensor(uninitializedShape: k.shape)
        let dv = Tensor(uninitializedShape: v.shape)
        Backends.current.attentionBackward(
            q: q.ptr, k: k.ptr, v: v.ptr, out: out.ptr, logSumExp: lse.ptr, dOut: g.ptr, dims: dims,
            mask: spec,
            dq: dq.storage.pointer, dk: dk.storage.pointer, dv: dv.storage.pointer)
        return [q.node != nil ? dq : nil, k.node != nil ? dk : nil, v.node != nil ? dv : nil]
    }
}
