import Checkpoint
import Optim
import Tensor
import TensorFiles

extension OptimizerState {
    /// The optimizer's state for a training checkpoint: tensors grouped by parameter name
    /// (`optimizer/<parameter>/exp_avg`, ...), plus the step and the skipped-step count.
    public init(_ optimizer: any Optimizer) throws {
        try self.init(step: optimizer.step, skippedSteps: optimizer.skippedSteps, stateTensors: optimizer.stateTensors())
    }

    /// State from tensors keyed `<parameter>.<slot>` (an optimizer's `stateTensors()`, or the moments
    /// of every data-parallel rank's share gathered into one list).
    public init(step: Int, skippedSteps: Int, stateTensors: [(String, Tensor)]) throws {
        var grouped: [String: [(String, Tensor)]] = [:]
        for (key, t) in stateTensors {
            guard let dot = key.lastIndex(of: ".") else {
                throw OptimizerError("state tensor \(key) has no slot name")
            }
            grouped[String(key[..<dot]), default: []].append((String(key[key.index(after: dot)...]), t))
        }
        var docs = JSONDocuments()
        try docs.set(skippedSteps, for: "skipped_steps")
        self.init(step: step, parameters: grouped.mapValues { NamedTensors($0) }, documents: docs)
    }

    /// Restores this state into `optimizer` (bit-exact: the tensors are the saved float32 values).
    /// - Parameter keeping: which parameters' state to load (ZeRO-1: this rank's share); default all.
    public func restore(into optimizer: any Optimizer, keeping: (String) -> Bool = { _ in true }) throws {
        var flat: [String: Tensor] = [:]
        for (parameter, slots) in parameters where keeping(parameter) {
            for (slot, t) in slots { flat["\(parameter).\(slot)"] = t }
        }
        let skipped = try documents.decode(Int.self, "skipped_steps") ?? 0
        try optimizer.loadState(flat, step: step, skippedSteps: skipped)
    }
}
