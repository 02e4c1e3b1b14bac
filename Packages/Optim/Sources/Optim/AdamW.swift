import Foundation
import Tensor

/// AdamW with the two weight-decay semantics in use.
///
/// Moments, bias correction and epsilon follow `torch.optim.AdamW` exactly (same order of float
/// operations), so trajectories match PyTorch's to float rounding. The update is one fused,
/// multi-threaded pass over each parameter that reads p, g, m, v once and writes p, m, v once.
public final class AdamW: Optimizer {
    /// How weight decay enters the update.
    public enum DecaySemantics: String, Codable, Sendable {
        /// PyTorch: `p -= lr_t * wd * p` with lr_t = peak x schedule (decay scales with the peak rate).
        case pytorch
        /// MM1/AXLearn, fully decoupled (Loshchilov & Hutter, Algorithm 2):
        /// `p -= s_t * (peak * m_hat / (sqrt(v_hat) + eps) + wd * p)`: decay scaled only by the
        /// schedule multiplier s_t, independent of the peak rate.
        case decoupled
    }

    public struct Config: Codable, Equatable, Sendable {
        public var learningRate: Double
        public var beta1: Double
        public var beta2: Double
        public var eps: Double
        public var semantics: DecaySemantics
        public var groups: ParameterGroups

        public init(
            learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
            weightDecay: Double = 0.01, semantics: DecaySemantics = .pytorch, groups: ParameterGroups? = nil
        ) {
            self.learningRate = learningRate
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.semantics = semantics
            self.groups = groups ?? ParameterGroups(weightDecay: weightDecay)
        }
    }

    public var config: Config
    public private(set) var step = 0
    public private(set) var skippedSteps = 0
    var expAvg: [String: Tensor] = [:]
    var expAvgSq: [String: Tensor] = [:]

    public init(_ config: Config) { self.config = config }

    @discardableResult
    public func update(
        _ parameters: [(String, Parameter)], gradients: Gradients, scheduleMultiplier: Double = 1,
        gradientNorm: Float? = nil
    ) throws -> StepOutcome {
        if let gradientNorm, !gradientNorm.isFinite {
            skippedSteps += 1
            return .skippedNonFinite
        }
        for (name, p) in parameters {
            guard let g = gradients[name] else { continue }
            guard g.shape == p.shape else {
                throw OptimizerError("AdamW: gradient of \(name) has shape \(g.shape), parameter \(p.shape)")
            }
        }
        step += 1
        let t = Double(step)
        let bc1 = 1 - pow(config.beta1, t)
        let bc2Sqrt = (1 - pow(config.beta2, t)).squareRoot()
        let lrPeak = config.learningRate
        for (name, p) in parameters {
            guard p.isTrainable, let g = gradients[name] else { continue }
            let group = config.groups.settings(for: name, shape: p.shape)
            // Taken out of the dictionaries so the in-place update does not copy them (copy-on-write).
            var m = expAvg.removeValue(forKey: name) ?? Tensor.zeros(p.shape)
            var v = expAvgSq.removeValue(forKey: name) ?? Tensor.zeros(p.shape)
            let lr = lrPeak * group.learningRateMultiplier * scheduleMultiplier
            // PyTorch: p *= 1 - lr * wd. Decoupled: p *= 1 - s_t * wd (folded into the same factor).
            let decayFactor: Double
            switch config.semantics {
            case .pytorch: decayFactor = 1 - lr * group.weightDecay
            case .decoupled: decayFactor = 1 - scheduleMultiplier * group.weightDecay
            }
            let coefficients = AdamKernel.Coefficients(
                decay: Float(decayFactor), beta1: Float(config.beta1), beta2: Float(config.beta2),
                stepSize: Float(lr / bc1), bc2Sqrt: Float(bc2Sqrt), eps: Float(config.eps))
            try p.update { data in
                try AdamKernel.apply(&data, gradient: g, expAvg: &m, expAvgSq: &v, coefficients)
            }
            expAvg[name] = m
            expAvgSq[name] = v
        }
        return .applied(learningRate: lrPeak * scheduleMultiplier)
    }

    public func stateTensors() -> [(String, Tensor)] {
        expAvg.keys.sorted().flatMap {
            [("\($0).exp_avg", expAvg[$0]!), ("\($0).exp_avg_sq", expAvgSq[$0]!)]
        }
    }

    public func loadState(_ tensors: [String: Tensor], step: Int, skippedSteps: Int = 0) throws {
        var m: [String: Tensor] = [:], v: [String: Tensor] = [:]
        for (key, t) in tensors {
            if key.hasSuffix(".exp_avg_sq") {
                v[String(key.dropLast(".exp_avg_sq".count))] = t
            } else if key.hasSuffix(".exp_avg") {
                m[String(key.dropLast(".exp_avg".count))] = t
            } else {
                throw OptimizerError("AdamW: unexpected state tensor \(key)")
            }
        }
        guard Set(m.keys) == Set(v.keys) else {
            throw OptimizerError(
                "AdamW: state has exp_avg for \(Set(m.keys).symmetricDifference(v.keys).sorted()) without exp_avg_sq (or the reverse)"
            )
        }
        expAvg = m
        expAvgSq = v
        self.step = step
        self.skippedSteps = skippedSteps
    }
}

/// The fused AdamW element update, in PyTorch's operation order:
/// `p *= decay; m += (1 - b1) (g - m); v = b2 v + (1 - b2) g^2; p += (-stepSize * m) / (sqrt(v) / bc2Sqrt + eps)`.
enum AdamKernel {
    struct Coefficients {
        var decay, beta1, beta2, stepSize, bc2Sqrt, eps: Float
    }

    static func apply(
        _ p: inout Tensor, gradient g: Tensor, expAvg m: inout Tensor, expAvgSq v: inout Tensor,
        _ c: Coefficients
    ) throws {
        let n = p.count
        g.withUnsafeBufferPointer { gp in
            m.withUnsafeMutableBufferPointer { mp in
                v.withUnsafeMutableBufferPointer { vp in
                    p.withUnsafeMutableBufferPointer { pp in
                        let G = gp.baseAddress!, M = mp.baseAddress!, V = vp.baseAddress!, P = pp.baseAddress!
                        // Constants in locals and chunk-relative pointers, so the loop vectorises.
                        let w1 = 1 - c.beta1, w2 = 1 - c.beta2, b2 = c.beta2, decay = c.decay
                        let negStep = -c.stepSize, bc2 = c.bc2Sqrt, eps = c.eps
                        ComputeRuntime.parallelFor(n, grain: 1 << 15) { r in
                            let g = G + r.lowerBound, m = M + r.lowerBound, v = V + r.lowerBound,
                                p = P + r.lowerBound
                            let count = r.count
                            var i = 0
                            // 8 lanes at a time (explicit SIMD: four aliasing pointers defeat the
                            // auto-vectoriser); each lane does exactly the scalar tail's operations.
                            while i + 8 <= count {
                                let gi = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                                let m0 = UnsafeRawPointer(m + i).loadUnaligned(as: SIMD8<Float>.self)
                                let v0 = UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                                let pi = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) * decay
                                let mi = m0 + w1 * (gi - m0)
                                let vi = v0 * b2 + w2 * gi * gi
                                let denom = vi.squareRoot() / bc2 + eps
                                UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: SIMD8<Float>.self)
                                UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: SIMD8<Float>.self)
                                UnsafeMutableRawPointer(p + i).storeBytes(
                                    of: pi + negStep * mi / denom, as: SIMD8<Float>.self)
                                i += 8
                            }
                            while i < count {
                                let gi = g[i]
                                let pi = p[i] * decay
                                // lerp as m + w (g - m); addcmul as (s * g) * g; addcdiv as (s * m) / denom.
                                let mi = m[i] + w1 * (gi - m[i])
                                let vi = v[i] * b2 + w2 * gi * gi
                                m[i] = mi
                                v[i] = vi
                                let denom = vi.squareRoot() / bc2 + eps
                                p[i] = pi + negStep * mi / denom
                                i += 1
                            }
                        }
                    }
                }
            }
        }
    }
}
