import Foundation

/// A learning-rate schedule: a pure function from the step (0-based) to a multiplier of the peak
/// rate, so a run resumed at step k continues exactly and the curve can be plotted without training.
public enum LearningRateSchedule: Codable, Equatable, Sendable {
    /// Linear warm-up over `warmup` steps, then cosine decay to `floor` x peak at step `total`
    /// (MM1: warmup 2000, total 200,000 including warm-up, floor 0.1):
    /// `(t + 1) / W` for t < W, else `f + (1 - f) * (1 + cos(pi * (t - W) / (T - W))) / 2`.
    case cosine(warmup: Int, total: Int, floor: Double)
    /// Linear warm-up, then constant.
    case constant(warmup: Int)
    /// Linear warm-up, then linear decay to `floor` x peak at `total`.
    case linear(warmup: Int, total: Int, floor: Double)

    /// MM1's schedule.
    public static let mm1 = LearningRateSchedule.cosine(warmup: 2000, total: 200_000, floor: 0.1)

    /// The multiplier of the peak learning rate at `step` (in [0, 1]).
    public func multiplier(at step: Int) -> Double {
        switch self {
        case .cosine(let w, let total, let f):
            if step < w { return Double(step + 1) / Double(w) }
            let progress = min(1, Double(step - w) / Double(max(total - w, 1)))
            return f + (1 - f) * (1 + cos(Double.pi * progress)) / 2
        case .constant(let w):
            return step < w ? Double(step + 1) / Double(w) : 1
        case .linear(let w, let total, let f):
            if step < w { return Double(step + 1) / Double(w) }
            let progress = min(1, Double(step - w) / Double(max(total - w, 1)))
            return 1 - (1 - f) * progress
        }
    }

    /// The learning rate at `step` for a given peak.
    public func learningRate(at step: Int, peak: Double) -> Double { peak * multiplier(at: step) }
}
