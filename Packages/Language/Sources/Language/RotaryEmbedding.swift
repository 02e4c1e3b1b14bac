import Foundation
import Tensor

/// Rotary position embeddings as HF Llama applies them: the head dimension is split in two halves
/// `x1 | x2` that rotate together (`rotate_half(x) = [-x2, x1]`), with inverse frequencies
/// `theta^(-2i/D)` optionally rescaled (Llama 3's `rope_scaling`).
public struct RotaryEmbedding: Sendable {
    /// `[D/2]` inverse frequencies (after scaling).
    public let inverseFrequencies: [Double]
    public let headDim: Int

    public init(config: LlamaConfig) {
        headDim = config.headDim
        let half = headDim / 2
        var inv = (0..<half).map { 1 / pow(config.ropeTheta, Double(2 * $0) / Double(config.headDim)) }
        switch config.ropeScaling {
        case nil: break
        case .linear(let factor)?: inv = inv.map { $0 / factor }
        case .llama3(let factor, let lowFreqFactor, let highFreqFactor, let original)?:
            let lowWavelen = Double(original) / lowFreqFactor
            let highWavelen = Double(original) / highFreqFactor
            inv = inv.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return f }  // high frequencies: unchanged
                if wavelen > lowWavelen { return f / factor }  // low frequencies: interpolated
                let smooth = (Double(original) / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
        inverseFrequencies = inv
    }

    /// cos and sin of `position * inverseFrequency`, each `[B, T, 1, D/2]` (broadcast over heads).
    /// - Parameter positions: `[B, T]` position ids.
    public func tables(positions: IndexTensor) throws -> (cos: Tensor, sin: Tensor) {
        guard positions.shape.count == 2 else {
            throw TensorError("rotary_embedding", "position ids must be [B, T], got \(positions.shape)")
        }
        let half = headDim / 2
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = c
        for (i, p) in positions.values.enumerated() {
            for j in 0..<half {
                let angle = Double(p) * inverseFrequencies[j]
                c[i * half + j] = Float(Foundation.cos(angle))
                s[i * half + j] = Float(Foundation.sin(angle))
            }
        }
        let shape = positions.shape + [1, half]
        return (try Tensor(shape: shape, scalars: c), try Tensor(shape: shape, scalars: s))
    }

    /// Rotates `x` `[B, T, H, D]` by the tables of `tables(positions:)`: per half,
    /// `[x1 cos - x2 sin, x2 cos + x1 sin]` (HF's `q * cos + rotate_half(q) * sin`).
    public static func apply(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor {
        let d = x.shape[x.rank - 1]
        let x1 = try x.slice(axis: -1, start: 0, end: d / 2)
        let x2 = try x.slice(axis: -1, start: d / 2)
        let first = try x1 * cos - x2 * sin
        let second = try x2 * cos + x1 * sin
        return try Tensor.concatenate([first, second], axis: -1)
    }
}

/// Position ids that restart at 0 at every document boundary of a packed row.
/// - Parameter documentIds: `[B, T]`; a new document starts wherever the id changes.
/// - Returns: `[B, T]`.
public func positionIds(documentIds: IndexTensor) throws -> IndexTensor {
    guard documentIds.shape.count == 2 else {
        throw TensorError("position_ids", "document ids must be [B, T], got \(documentIds.shape)")
    }
    let (b, t) = (documentIds.shape[0], documentIds.shape[1])
    var out = [Int](repeating: 0, count: b * t)
    for r in 0..<b {
        for i in 0..<t where i > 0 && documentIds.values[r * t + i] == documentIds.values[r * t + i - 1] {
            out[r * t + i] = out[r * t + i - 1] + 1
        }
    }
    return try IndexTensor(shape: [b, t], values: out)
}
