import Foundation
import Training
import TrainingTestSupport

// A tiny training run for the kill/resume and signal tests:
//   TrainingProbe <run-directory> <total-steps> [checkpoint-every] [data-directory]
// Resumes from <run-directory>/checkpoints (resume: auto), appends "step loss-bits z-loss-bits" per
// step to <run-directory>/losses.txt (flushed at once), exits 0 after the last step or a SIGINT/SIGTERM.

let args = CommandLine.arguments
guard args.count >= 3, let total = Int(args[2]) else {
    FileHandle.standardError.write(Data("usage: TrainingProbe <run-directory> <total-steps> [checkpoint-every] [data-directory]\n".utf8))
    exit(2)
}
let every = args.count > 3 ? Int(args[3]) ?? 1 : 1
let dir = URL(fileURLWithPath: args[1])
do {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    // The synthetic world (written once; several runs may share it).
    let files = try TinyRun.world(
        at: args.count > 4 ? URL(fileURLWithPath: args[4]) : dir.appendingPathComponent("data"))
    let model = try MultimodalModel(config: TinyRun.modelConfig())
    let trainer = try Trainer(
        stage: "pretrain", model: model, optimization: TinyRun.optimization(total: total),
        checkpointing: CheckpointConfig(every: every, keepLast: 2, resume: "auto"),
        evaluation: EvalConfig(every: 0), checkpointDirectory: dir.appendingPathComponent("checkpoints").path,
        data: try TinyRun.feed(files, microBatch: 2))
    let log = dir.appendingPathComponent("losses.txt").path
    if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    try handle.seekToEnd()
    trainer.onStep = { r in
        let line = "\(r.step) \(r.loss.bitPattern) \(r.zLoss.bitPattern)\n"
        try? handle.write(contentsOf: Data(line.utf8))
    }
    let summary = try trainer.run()
    try handle.close()
    print("done step \(summary.finalStep) stopped-by \(summary.stoppedBy ?? "-")")
    exit(0)
} catch {
    FileHandle.standardError.write(Data("TrainingProbe: \(error)\n".utf8))
    exit(1)
}
