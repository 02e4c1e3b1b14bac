import Foundation
import Tensor

/// Errors from optimizers: a gradient or state that does not fit its parameter.
public struct OptimizerError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What one optimizer step did.
public enum StepOutcome: Equatable, Sendable {
    /// The update was applied with this learning rate (peak x schedule).
    case applied(learningRate: Double)
    /// The gradient norm was not finite; parameters and state were left unchanged.
    case skippedNonFinite
}

/// An optimizer over named parameters and named gradients. Its state is keyed by the parameter names
/// (`<name>.exp_avg`, ...) and saved and restored as named tensors plus a `Codable` header, so a
/// training checkpoint can persist it without Optim knowing the file format.
public protocol Optimizer: AnyObject {
    /// Steps taken (applied, not skipped).
    var step: Int { get }
    /// Steps skipped because the gradient was not finite.
    var skippedSteps: Int { get }

    /// Updates `parameters` in place from `gradients` (parameters without a gradient are left alone).
    /// - Parameters:
    ///   - scheduleMultiplier: the schedule's value at this step (peak rate x multiplier is used).
    ///   - gradientNorm: the pre-clip global norm, when the caller already computed it; a non-finite
    ///     value skips the step.
    @discardableResult
    func update(
        _ parameters: [(String, Parameter)], gradients: Gradients, scheduleMultiplier: Double,
        gradientNorm: Float?
    ) throws -> StepOutcome

    /// The state as named tensors (keyed `<parameter>.<slot>`).
    func stateTensors() -> [(String, Tensor)]
    /// Restores state saved by `stateTensors()` and `step`.
    func loadState(_ tensors: [String: Tensor], step: Int, skippedSteps: Int) throws
}
