import Foundation
import Tensor

/// AdamW with the two weight-decay semantics in use.
///
/// Moments, bias correction and epsilon follow `torch.optim.AdamW` exactly (same order of float
/// operations), so trajectories match PyTorch's to float rounding. The update is one fused pass per
/// parameter through the backend (`Tensor.adamWUpdate`: multi-threaded on the CPU) that reads p, g,
/// m, v once and writes p, m, v once, with the clipping coefficient applied as g is read.
///
/// The learning rate of update number `step + 1` is `peak x group multiplier x
/// schedule.multiplier(at: step)`; see `Optimizer` for how steps, skipped steps and the trainer's
/// global step relate.
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
        /// The peak learning rate.
        public var learningRate: Double
        public var beta1: Double
        public var beta2: Double
        public var eps: Double
        public var semantics: DecaySemantics
        public var groups: ParameterGroups
        /// The multiplier of the peak rate as a function of `step` (default: constant 1).
        public var schedule: LearningRateSchedule

        /// - Parameters:
        ///   - weightDecay: used when `groups` is nil: `ParameterGroups(weightDecay:)` (no decay on
        ///     vectors and norms; pass `groups: .decayEverything(weightDecay:)` for PyTorch's default).
        public init(
            learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
            weightDecay: Double = 0.01, semantics: DecaySemantics = .pytorch, groups: ParameterGroups? = nil,
            schedule: LearningRateSchedule = .constant(warmup: 0)
        ) {
            self.learningRate = learningRate
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.semantics = semantics
            self.groups = groups ?? ParameterGroups(weightDecay: weightDecay)
            self.schedule = schedule
        }

        enum CodingKeys: String, CodingKey { case learningRate, beta1, beta2, eps, semantics, groups, schedule }

        /// Decodes a config; absent fields take the initialiser's defaults.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                learningRate: try c.decode(Double.self, forKey: .learningRate),
                beta1: try c.decodeIfPresent(Double.self, forKey: .beta1) ?? 0.9,
                beta2: try c.decodeIfPresent(Double.self, forKey: .beta2) ?? 0.999,
                eps: try c.decodeIfPresent(Double.self, forKey: .eps) ?? 1e-8,
                semantics: try c.decodeIfPresent(DecaySemantics.self, forKey: .semantics) ?? .pytorch,
                groups: try c.decodeIfPresent(ParameterGroups.self, forKey: .groups),
                schedule: try c.decodeIfPresent(LearningRateSchedule.self, forKey: .schedule) ?? .constant(warmup: 0))
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
        _ parameters: [(String, Parameter)], gradients: Gradients, gradientNorm: Float? = nil,
        maxGradientNorm: Float? = nil
    ) throws -> StepOutcome {
        let gate = try StepGate.open(
            "AdamW", parameters: parameters, gradients: gradients, gradientNorm: gradientNorm,
            maxGradientNorm: maxGradientNorm)
        if gate.skip {
            skippedSteps += 1
            return .skippedNonFinite(gradientNorm: gate.norm)
        }
        let scheduleMultiplier = config.schedule.multiplier(at: step)
        step += 1
        let t = Double(step)
        let bc1 = 1 - pow(config.beta1, t)
        let bc2Sqrt = (1 - pow(config.beta2, t)).squareRoot()
        let lrPeak = config.learningRate
        var rates: [String: Double] = [:]
        for (name, p) in parameters {
            guard p.isTrainable, let g = gradients[name] else { continue }
            let group = config.groups.settings(for: name, shape: p.shape)
            // Taken out of the dictionaries so the in-place update does not copy them (copy-on-write).
            var m = expAvg.removeValue(forKey: name) ?? Tensor.zeros(p.shape)
            var v = expAvgSq.removeValue(forKey: name) ?? Tensor.zeros(p.shape)
            let lr = lrPeak * group.learningRateMultiplier * scheduleMultiplier
            rates[group.group] = lr
            // PyTorch: p *= 1 - lr * wd. Decoupled: p *= 1 - s_t * wd (folded into the same factor).
            let decayFactor: Double
            switch config.semantics {
            case .pytorch: decayFactor = 1 - lr * group.weightDecay
            case .decoupled: decayFactor = 1 - scheduleMultiplier * group.weightDecay
            }
            let coefficients = AdamWCoefficients(
                decay: Float(decayFactor), beta1: Float(config.beta1), beta2: Float(config.beta2),
                stepSize: Float(lr / bc1), bc2Sqrt: Float(bc2Sqrt), eps: Float(config.eps),
                gradientScale: gate.clip)
            try p.update { data in
                try data.adamWUpdate(gradient: g, expAvg: &m, expAvgSq: &v, coefficients)
            }
            expAvg[name] = m
            expAvgSq[name] = v
        }
        return .applied(
            StepReport(
                step: step, scheduleMultiplier: scheduleMultiplier, gradientNorm: gate.norm,
                clipCoefficient: gate.clip, learningRates: rates))
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
