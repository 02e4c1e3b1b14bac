/// Receives the scalars a run produces (loss, z-loss, lr, grad norm, tokens/s, ...) keyed by name.
public protocol MetricsSink: AnyObject {
    /// - Parameters: stage: the stage name ("pretrain", ...); step: the global optimizer step (1-based).
    func record(stage: String, step: Int, scalars: [String: Double]) throws
    /// Called at evaluations and at the end of a run.
    func flush() throws
}
