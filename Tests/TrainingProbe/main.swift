import Foundation
import Training
import TrainingTestSupport

// A tiny training run for the kill/resume, signal and data-parallel tests:
//   TrainingProbe <run-directory> <total-steps> [checkpoint-every] [data-directory] [options]
// Resumes from <run-directory>/checkpoints (resume: auto), appends "step loss-bits z-loss-bits" per
// step to <run-directory>/losses.txt (flushed at once; rank 0 only under mpirun), exits 0 after the last
// step or a SIGINT/SIGTERM. Each rank writes its process id to <run-directory>/pid-<rank>.
// Options (data-parallel tests):
//   --micro N --global N      micro-batch and global batch (default 2 and 4)
//   --rows N                  the rank-count-independent row feed over the first N packed rows
//   --zero                    ZeRO stage 1;  --no-overlap: all-reduce after backward;  --bucket-mb X
//   --fail R:B                rank R's data feed throws at its batch B (0-based)
//   --stop-after S            stop (checkpoint, exit 0) after step S, as on SIGTERM

var positional: [String] = []
var options: [String: String] = [:]
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    if a.hasPrefix("--") {
        let key = String(a.dropFirst(2))
        if ["zero", "no-overlap"].contains(key) { options[key] = "1" } else { options[key] = it.next() ?? "" }
    } else {
        positional.append(a)
    }
}
guard positional.count >= 2, let total = Int(positional[1]) else {
    FileHandle.standardError.write(Data("usage: TrainingProbe <run-directory> <total-steps> [checkpoint-every] [data-directory] [options]\n".utf8))
    exit(2)
}
let every = positional.count > 2 ? Int(positional[2]) ?? 1 : 1
let dir = URL(fileURLWithPath: positional[0])
do {
    let parallel = try DataParallel.automatic(
        DataParallelConfig(
            bucketMegabytes: Double(options["bucket-mb"] ?? "") ?? 25, overlap: options["no-overlap"] == nil,
            zeroStage: options["zero"] != nil ? 1 : 0))
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try Data("\(ProcessInfo.processInfo.processIdentifier)".utf8).write(
        to: dir.appendingPathComponent("pid-\(parallel.rank)"))
    // The synthetic world (written once by rank 0; several runs may share it).
    let files = try DataParallel.rankZeroFirst {
        try TinyRun.world(at: positional.count > 3 ? URL(fileURLWithPath: positional[3]) : dir.appendingPathComponent("data"))
    }
    let micro = Int(options["micro"] ?? "") ?? 2
    let global = Int(options["global"] ?? "") ?? 4
    var feed = try TinyRun.feed(files, microBatch: micro)
    if let rows = options["rows"].flatMap(Int.init) {
        let fail = options["fail"].map { $0.split(separator: ":").compactMap { Int($0) } }
        feed = TinyRun.rowFeed(
            rows: try TinyRun.packedRows(files, rows: rows), microBatch: micro, rank: parallel.rank,
            worldSize: parallel.worldSize, failAt: fail.map { ($0[0], $0[1]) })
    }
    let model = try MultimodalModel(config: TinyRun.modelConfig())
    let trainer = try Trainer(
        stage: "pretrain", model: model, optimization: TinyRun.optimization(total: total, global: global, micro: micro),
        checkpointing: CheckpointConfig(every: every, keepLast: 2, resume: "auto"),
        evaluation: EvalConfig(every: 0), checkpointDirectory: dir.appendingPathComponent("checkpoints").path,
        data: feed, dataParallel: parallel)
    let log = dir.appendingPathComponent("losses.txt").path
    var handle: FileHandle?
    if parallel.isWriter {
        if !FileManager.default.fileExists(atPath: log) { try Data().write(to: URL(fileURLWithPath: log)) }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try handle?.seekToEnd()
    }
    let stopAfter = options["stop-after"].flatMap(Int.init)
    trainer.onStep = { r in
        let line = "\(r.step) \(r.loss.bitPattern) \(r.zLoss.bitPattern)\n"
        try? handle?.write(contentsOf: Data(line.utf8))
        if r.step == stopAfter { trainer.stop.request() }
    }
    let summary = try trainer.run()
    try handle?.close()
    print("done step \(summary.finalStep) stopped-by \(summary.stoppedBy ?? "-")")
    exit(0)
} catch {
    FileHandle.standardError.write(Data("TrainingProbe: \(error)\n".utf8))
    DataParallel.failJob(error)
    exit(1)
}
