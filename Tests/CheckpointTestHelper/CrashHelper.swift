import ArgumentParser
import Checkpoint
import Foundation
import Tensor
import TensorFiles

/// Test helper (hidden): saves training checkpoints into a directory in a loop, printing
/// `saved <step>` after each save returns, until killed. The crash-safety test kills it at random
/// moments and checks that `latest` always loads a complete checkpoint.
///
/// Each checkpoint's contents are a function of its step (see `CheckpointCrashTests`), so a reader
/// can tell a complete checkpoint from a torn one.
struct CrashHelper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_crash-helper", abstract: "Save checkpoints in a loop until killed (tests).",
        shouldDisplay: false)

    @Argument var directory: String
    @Option var keep = 2
    @Option(help: "Elements per model tensor.") var size = 16384
    @Option(help: "Stop after this many saves (0: never).") var saves = 0

    func run() throws {
        let dir = try CheckpointDirectory(directory, keep: keep)
        var step = (try? dir.latest())?.step ?? 0
        print("ready \(step)")
        fflush(stdout)
        var done = 0
        while saves == 0 || done < saves {
            step += 1
            try dir.save(CrashHelper.checkpoint(step: step, size: size), step: step)
            print("saved \(step)")
            fflush(stdout)
            done += 1
        }
    }

    /// The checkpoint for `step`: every value is determined by the step.
    static func checkpoint(step: Int, size: Int) throws -> TrainingCheckpoint {
        var model = NamedTensors()
        for (k, name) in ["embed.weight", "block.0.weight", "block.1.weight", "head.bias"].enumerated() {
            let values = (0..<size).map { Float(step) * 0.5 + Float(($0 + k) % 97) }
            model[name] = try Tensor(shape: [size / 64, 64], scalars: values)
        }
        var optimizer = OptimizerState(step: step)
        for (name, t) in model { optimizer.parameters[name] = ["exp_avg": t * 2, "exp_avg_sq": try t * t] }
        var trainer = TrainerState(globalStep: step)
        try trainer.documents.set(["step": step, "sample": step * 10], for: TrainerState.Key.dataCursor)
        try trainer.documents.set(
            RandomGenerator(seed: UInt64(step), offset: UInt64(step) * 3), for: TrainerState.Key.rngStates)
        try trainer.documents.set(
            (0..<min(step, 50)).map { Double($0) / Double(step) }, for: TrainerState.Key.metricHistory)
        return TrainingCheckpoint(model: model, optimizer: optimizer, trainer: trainer)
    }
}
