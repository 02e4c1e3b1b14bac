import Checkpoint
import Optim
import Tensor
import TensorFiles

extension OptimizerState {
    /// The optimizer's state for a training checkpoint: tensors grouped by parameter name
    /// (`optimizer/<parameter>/exp_avg`, ...), plus the step and the skipped-step count.
    public init(_ optimizer: any Optimizer) throws {
        var grouped: [String: [(String, Tensor)]] = [:]
        for (key, t) in optimizer.stateTensors() {
            guard let dot = key.lastIndex(of: ".") else {
                throw OptimizerError("state tensor \(key) has no slot name")
            }
            grouped[String(key[..<dot]), default: []].append((String(key[key.index(after: dot)...]), t))
        }
        var docs = JSONDocuments()
        try docs.set(optimizer.skippedSteps, for: "skipped_steps")
        self.init(step: optimizer.step, parameters: grouped.mapValues { NamedTensors($0) }, documents: docs)
    }

    /// Restores this state into `optimizer` (bit-exact: the tensors are the saved float32 values).
    public func restore(into optimizer: any Optimizer) throws {
        var flat: [String: Tensor] = [:]
        for (parameter, slots) in parameters {
            for (slot, t) in slots { flat["\(parameter).\(slot)"] = t }
        }
        let skipped = try documents.decode(Int.self, "skipped_steps") ?? 0
        try optimizer.loadState(flat, step: step, skippedSteps: skipped)
    }
}
