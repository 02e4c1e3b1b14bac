import Foundation
import Tensor

/// SGD with momentum, as `torch.optim.SGD`: `g += wd * p`; `buf = momentum * buf + (1 - dampening) * g`
/// (the first step takes `buf = g`); Nesterov uses `g + momentum * buf`; `p -= lr * buf`. One fused
/// pass per parameter through the backend (`Tensor.sgdUpdate`), with the clipping coefficient applied
/// as g is read. Steps and the schedule as `Optimizer` describes.
public final class SGD: Optimizer {
    public struct Config: Codable, Equatable, Sendable {
        /// The peak learning rate.
        public var learningRate: Double
        public var momentum: Double
        public var dampening: Double
        public var nesterov: Bool
        /// Weight decay and learning-rate multipliers per group (default: PyTorch's, every
        /// parameter decays).
        public var groups: ParameterGroups
        /// The multiplier of the peak rate as a function of `step` (default: constant 1).
        public var schedule: LearningRateSchedule

        /// - Parameters:
        ///   - weightDecay: used when `groups` is nil: `ParameterGroups.decayEverything(weightDecay:)`.
        public init(
            learningRate: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
            nesterov: Bool = false, groups: ParameterGroups? = nil, schedule: LearningRateSchedule = .constant(warmup: 0)
        ) {
            self.learningRate = learningRate
            self.momentum = momentum
            self.dampening = dampening
            self.nesterov = nesterov
            self.groups = groups ?? .decayEverything(weightDecay: weightDecay)
            self.schedule = schedule
        }
    }

    public var config: Config
    public private(set) var step = 0
    public private(set) var skippedSteps = 0
    var momentumBuffers: [String: Tensor] = [:]

    public init(_ config: Config) { self.config = config }

    @discardableResult
    public func update(
        _ parameters: [(String, Parameter)], gradients: Gradients, gradientNorm: Float? = nil,
        maxGradientNorm: Float? = nil
    ) throws -> StepOutcome {
        let gate = try StepGate.open(
            "SGD", parameters: parameters, gradients: gradients, gradientNorm: gradientNorm,
            maxGradientNorm: maxGradientNorm)
        if gate.skip {
            skippedSteps += 1
            return .skippedNonFinite(gradientNorm: gate.norm)
        }
        let scheduleMultiplier = config.schedule.multiplier(at: step)
        step += 1
        var rates: [String: Double] = [:]
        for (name, p) in parameters {
            guard p.isTrainable, let g = gradients[name] else { continue }
            let group = config.groups.settings(for: name, shape: p.shape)
            let lr = config.learningRate * group.learningRateMultiplier * scheduleMultiplier
            rates[group.group] = lr
            let c = SGDCoefficients(
                learningRate: Float(lr), weightDecay: Float(group.weightDecay), momentum: Float(config.momentum),
                gradientWeight: Float(1 - config.dampening), nesterov: config.nesterov, gradientScale: gate.clip)
            var buffer = momentumBuffers.removeValue(forKey: name)
            try p.update { try $0.sgdUpdate(gradient: g, momentumBuffer: &buffer, c) }
            if let buffer { momentumBuffers[name] = buffer }
        }
        return .applied(
            StepReport(
                step: step, scheduleMultiplier: scheduleMultiplier, gradientNorm: gate.norm,
                clipCoefficient: gate.clip, learningRates: rates))
    }

    public func stateTensors() -> [(String, Tensor)] {
        momentumBuffers.keys.sorted().map { ("\($0).momentum_buffer", momentumBuffers[$0]!) }
    }

    public func loadState(_ tensors: [String: Tensor], step: Int, skippedSteps: Int = 0) throws {
        var bufs: [String: Tensor] = [:]
        for (key, t) in tensors {
            guard key.hasSuffix(".momentum_buffer") else {
                throw OptimizerError("SGD: unexpected state tensor \(key)")
            }
            bufs[String(key.dropLast(".momentum_buffer".count))] = t
        }
        momentumBuffers = bufs
        self.step = step
        self.skippedSteps = skippedSteps
    }
}
