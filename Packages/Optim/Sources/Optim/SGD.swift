import Foundation
import Tensor

/// SGD with momentum, as `torch.optim.SGD`: `g += wd * p`; `buf = momentum * buf + (1 - dampening) * g`
/// (the first step takes `buf = g`); Nesterov uses `g + momentum * buf`; `p -= lr * buf`.
public final class SGD: Optimizer {
    public struct Config: Codable, Equatable, Sendable {
        public var learningRate: Double
        public var momentum: Double
        public var dampening: Double
        public var weightDecay: Double
        public var nesterov: Bool

        public init(
            learningRate: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
            nesterov: Bool = false
        ) {
            self.learningRate = learningRate
            self.momentum = momentum
            self.dampening = dampening
            self.weightDecay = weightDecay
            self.nesterov = nesterov
        }
    }

    public var config: Config
    public private(set) var step = 0
    public private(set) var skippedSteps = 0
    var momentumBuffers: [String: Tensor] = [:]

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
        step += 1
        let lr = Float(config.learningRate * scheduleMultiplier)
        for (name, p) in parameters {
            guard p.isTrainable, var d = gradients[name] else { continue }
            guard d.shape == p.shape else {
                throw OptimizerError("SGD: gradient of \(name) has shape \(d.shape), parameter \(p.shape)")
            }
            if config.weightDecay != 0 { try d.axpby(Float(config.weightDecay), p.data, beta: 1) }
            if config.momentum != 0 {
                var buf: Tensor
                if var b = momentumBuffers[name] {
                    try b.axpby(Float(1 - config.dampening), d, beta: Float(config.momentum))
                    buf = b
                } else {
                    buf = d
                    buf.scale(by: 1)  // own copy
                }
                momentumBuffers[name] = buf
                if config.nesterov { try d.axpby(Float(config.momentum), buf, beta: 1) } else { d = buf }
            }
            try p.update { try $0.axpby(-lr, d, beta: 1) }
        }
        return .applied(learningRate: Double(lr))
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
