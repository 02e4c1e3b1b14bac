import Foundation
import Tensor

/// Errors from optimizers: a gradient or state that does not fit its parameter.
public struct OptimizerError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What an applied step did: the counters, the norm and the rates each parameter group used.
public struct StepReport: Equatable, Sendable {
    /// The applied-update number of this step, 1-based: AdamW's bias-correction `t` (`optimizer.step`
    /// after the call).
    public var step: Int
    /// The schedule's multiplier used, `schedule.multiplier(at: step - 1)`.
    public var scheduleMultiplier: Double
    /// The global L2 norm of the gradients before clipping (given by the caller or computed).
    public var gradientNorm: Float
    /// The factor the gradients were multiplied by (`min(1, maxNorm / (norm + 1e-6))`, 1 without clipping).
    public var clipCoefficient: Float
    /// The learning rate each parameter group used, keyed by group name (`ParameterGroups`):
    /// peak x group multiplier x schedule multiplier. Only groups that updated a parameter appear.
    public var learningRates: [String: Double]

    /// The learning rate of the default group (`ParameterGroups.defaultGroupName`), or of the only group.
    public var learningRate: Double? {
        learningRates[ParameterGroups.defaultGroupName] ?? (learningRates.count == 1 ? learningRates.first!.value : nil)
    }
}

/// What one optimizer step did.
public enum StepOutcome: Equatable, Sendable {
    /// The update was applied.
    case applied(StepReport)
    /// The gradient norm (carried) was not finite; parameters, moments, `step` and the schedule's
    /// position were left unchanged, and `skippedSteps` grew by one.
    case skippedNonFinite(gradientNorm: Float)

    /// Whether the step was skipped.
    public var isSkipped: Bool {
        if case .skippedNonFinite = self { return true }
        return false
    }

    /// The pre-clip global gradient norm of the step (NaN or infinite when skipped).
    public var gradientNorm: Float {
        switch self {
        case .applied(let r): return r.gradientNorm
        case .skippedNonFinite(let n): return n
        }
    }

    /// The report of an applied step (nil when skipped).
    public var report: StepReport? {
        if case .applied(let r) = self { return r }
        return nil
    }
}

/// An optimizer over named parameters and named gradients. Its state is keyed by the parameter names
/// (`<name>.exp_avg`, ...) and saved and restored as named tensors plus a `Codable` header, so a
/// training checkpoint can persist it without Optim knowing the file format.
///
/// **Steps, one story.** The optimizer owns the only step counter that the update reads:
/// - `step` counts applied updates. Update number `step + 1` uses the schedule at `step` (0-based:
///   `schedule.multiplier(at: step)`) and AdamW's bias correction with `t = step + 1`, as
///   `torch.optim.AdamW`'s `state["step"]` after its increment.
/// - A skipped step (non-finite gradient norm) changes nothing but `skippedSteps`: the next applied
///   step uses the same schedule position and bias correction the skipped one would have.
/// - The trainer's global step (batches consumed, log and checkpoint index) is
///   `globalStep = step + skippedSteps`: every call to `update` advances it by one.
///
/// **One gate.** Every `update` computes the global gradient norm itself when the caller gives none,
/// and skips the step when it is not finite, before anything is written: NaN or infinity never
/// reaches the parameters or the moments.
public protocol Optimizer: AnyObject {
    /// Applied updates (the schedule's position and AdamW's bias-correction step).
    var step: Int { get }
    /// Steps skipped because the gradient norm was not finite.
    var skippedSteps: Int { get }

    /// Updates `parameters` in place from `gradients` (parameters without a gradient, and frozen
    /// parameters, are left alone).
    /// - Parameters:
    ///   - gradientNorm: the pre-clip global norm when the caller already computed it (for example
    ///     over all data-parallel ranks); nil: computed here from `gradients`.
    ///   - maxGradientNorm: clip to this global norm, `torch.nn.utils.clip_grad_norm_`'s coefficient
    ///     fused into the update (the gradients are not modified). Nil: no clipping. Pass it only for
    ///     gradients that were not clipped already.
    /// - Returns: `.applied` with the rates used, or `.skippedNonFinite`.
    /// - Throws: `OptimizerError` when a gradient's shape differs from its parameter's.
    @discardableResult
    func update(
        _ parameters: [(String, Parameter)], gradients: Gradients, gradientNorm: Float?, maxGradientNorm: Float?
    ) throws -> StepOutcome

    /// The state as named tensors (keyed `<parameter>.<slot>`).
    func stateTensors() -> [(String, Tensor)]
    /// Restores state saved by `stateTensors()`, `step` and `skippedSteps`.
    func loadState(_ tensors: [String: Tensor], step: Int, skippedSteps: Int) throws
}

extension Optimizer {
    /// The trainer's global step: calls to `update`, applied or skipped (`step + skippedSteps`).
    public var globalStep: Int { step + skippedSteps }

}

/// The one place that decides whether a step runs: shapes checked, the global norm taken (when the
/// caller gave none), non-finite norms rejected, the clipping coefficient computed.
enum StepGate {
    /// - Returns: the pre-clip norm and the coefficient to multiply gradients by, or nil to skip
    ///   (the norm returned separately for the outcome).
    static func open(
        _ who: String, parameters: [(String, Parameter)], gradients: Gradients, gradientNorm: Float?,
        maxGradientNorm: Float?
    ) throws -> (norm: Float, clip: Float, skip: Bool) {
        for (name, p) in parameters {
            guard let g = gradients[name] else { continue }
            guard g.shape == p.shape else {
                throw OptimizerError("\(who): gradient of \(name) has shape \(g.shape), parameter \(p.shape)")
            }
        }
        if let maxGradientNorm, !(maxGradientNorm > 0) {
            throw OptimizerError("\(who): maxGradientNorm must be positive, got \(maxGradientNorm)")
        }
        let norm = gradientNorm ?? gradients.globalNorm()
        guard norm.isFinite else { return (norm, 1, true) }
        return (norm, clipCoefficient(norm: norm, maxNorm: maxGradientNorm), false)
    }
}

/// `clip_grad_norm_`'s coefficient: `min(maxNorm / (norm + 1e-6), 1)` in Float, 1 without a maximum.
func clipCoefficient(norm: Float, maxNorm: Float?) -> Float {
    guard let maxNorm else { return 1 }
    return min(maxNorm / (norm + 1e-6), 1)
}
