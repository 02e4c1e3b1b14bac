import Bridges
import Collectives
import Datasets
import Dispatch
import Foundation
import Language
import Tensor
import Training
import Vision

// Data-parallel benchmarks (Open MPI on one machine). Run in release:
//   swift build -c release --package-path Benchmarks
//   B=Benchmarks/.build/release/sightline-dp-bench
//   mpirun -np 2 $B allreduce          all-reduce GB/s of 1..256 MiB float32 buffers
//   $B step                            step-time overhead of data parallelism at 2 ranks: launches
//                                      itself under mpirun (overlap on and off) and compares with one
//                                      process doing half the work (same micro-batch, half the global batch)
// Options: --repeats N (default 5), --threads N (compute threads per rank; default cores / ranks).

var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    let v = args[i + 1]
    args.removeSubrange(i...(i + 1))
    return v
}
let repeats = Int(option("--repeats") ?? "") ?? 5
let threadsOption = option("--threads").flatMap(Int.init)
let mode = args.first ?? "step"

func say(_ s: String) {
    print(s)
    fflush(stdout)
}

/// Median and best of `values`.
func summary(_ values: [Double]) -> (best: Double, median: Double) {
    let s = values.sorted()
    return (s.first!, s[s.count / 2])
}

// MARK: all-reduce bandwidth

func allReduceBench() throws {
    guard let world = try Communicator.world(), world.size > 1 else {
        say("allreduce: run under mpirun -np 2 (or more)")
        exit(2)
    }
    if world.rank == 0 { say("# all-reduce (sum, in place, float32), \(world.size) ranks, \(world.library)") }
    if world.rank == 0 { say("size_MiB\tbest_ms\tmedian_ms\talg_GB/s\tbus_GB/s") }
    for mib in [1, 4, 16, 64, 256] {
        let n = mib * 1_048_576 / 4
        var buffer = [Float](repeating: Float(world.rank + 1), count: n)
        // Check the result once: every element is the sum of (rank + 1) over ranks.
        try buffer.withUnsafeMutableBufferPointer { try world.allReduce($0, .sum) }
        let want = Float(world.size * (world.size + 1) / 2)
        guard buffer[0] == want, buffer[n - 1] == want else {
            throw CollectiveError(rank: world.rank, operation: "check", cause: "all-reduce gave \(buffer[0]), want \(want)")
        }
        var times: [Double] = []
        for i in 0..<(repeats + 1) {
            try world.barrier()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try buffer.withUnsafeMutableBufferPointer { try world.allReduce($0, .sum) }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if i > 0 { times.append(dt) }
        }
        var worst = times
        try world.allReduce(&worst, .max)  // a collective ends when its slowest rank does
        let (best, median) = summary(worst)
        let bytes = Double(n * 4)
        let alg = bytes / best / 1e9
        let bus = alg * 2 * Double(world.size - 1) / Double(world.size)
        if world.rank == 0 {
            say(String(format: "%d\t%.2f\t%.2f\t%.2f\t%.2f", mib, best * 1e3, median * 1e3, alg, bus))
        }
    }
}

// MARK: step time

/// A decoder of about 3.4 M parameters (hidden 256, 4 layers), text-only rows of 128 tokens.
func benchModel() throws -> MultimodalModel {
    try MultimodalModel(
        config: ModelConfig(
            vision: CLIPVisionConfig(
                imageSize: 8, patchSize: 4, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                intermediateSize: 32),
            connector: .projection(ProjectionConfig(visionDim: 16, llmDim: 256, depth: 2, featureLevel: -1)),
            languageModel: LlamaConfig(
                vocabSize: 2048, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 8,
                numKeyValueHeads: 4, bosTokenId: 2, eosTokenId: 3, padTokenId: 0),
            imageTokenId: 1, seed: 5))
}

final class FixedStream: BatchStream {
    let batch: PackedBatch
    var served = 0
    init(_ b: PackedBatch) { batch = b }
    func next() throws -> PackedBatch {
        served += 1
        return batch
    }
    func cursorJSON() throws -> String { String(served) }
}

func textBatch(rows: Int, length: Int, seed: UInt64) throws -> PackedBatch {
    var state = seed
    func next() -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return 4 + Int((state >> 33) % 2000)
    }
    let tokens = (0..<(rows * length)).map { _ in next() }
    let shape = [rows, length]
    return try PackedBatch(
        tokens: IndexTensor(shape: shape, values: tokens), labels: IndexTensor(shape: shape, values: tokens),
        documentIds: IndexTensor(shape: shape, values: [Int](repeating: 0, count: rows * length)),
        positionIds: IndexTensor(shape: shape, values: (0..<rows).flatMap { _ in Array(0..<length) }),
        placeholders: [], images: nil)
}

/// Runs `steps` optimizer steps with micro-batch 4 x 128 tokens and `global` rows per step on this
/// process's data-parallel job; prints `step_seconds <median> <best>` on rank 0.
func stepBench(global: Int, overlap: Bool, steps: Int) throws {
    let parallel = try DataParallel.automatic(DataParallelConfig(bucketMegabytes: 1, overlap: overlap))
    let cores = ProcessInfo.processInfo.activeProcessorCount
    try ComputeRuntime.setThreads(threadsOption ?? max(1, cores / max(1, parallel.communicator?.localSize ?? 1)))
    let model = try benchModel()
    let batch = try textBatch(rows: 4, length: 128, seed: UInt64(17 + parallel.rank))
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-bench-\(UUID().uuidString)")
    defer { if parallel.isWriter { try? FileManager.default.removeItem(at: dir) } }
    let trainer = try Trainer(
        stage: "bench", model: model,
        optimization: OptimizationConfig(
            learningRate: .fixed(1e-3), warmupSteps: 1, totalSteps: steps + 2, globalBatch: global, microBatch: 4),
        checkpointing: CheckpointConfig(every: 0, keepLast: 1, resume: "never"), evaluation: EvalConfig(every: 0),
        checkpointDirectory: dir.path, data: DataFeed(open: { _ in FixedStream(batch) }), dataParallel: parallel)
    trainer.handlesSignals = false
    var times: [Double] = []
    var last = DispatchTime.now().uptimeNanoseconds
    trainer.onStep = { r in
        let now = DispatchTime.now().uptimeNanoseconds
        if r.step > 2 { times.append(Double(now - last) * 1e-9) }  // two warm-up steps
        last = now
    }
    try trainer.run()
    // The last step also writes a checkpoint; its time is not in `times` (measured at onStep).
    let (best, median) = summary(times)
    if parallel.isWriter { say(String(format: "step_seconds %.6f %.6f", median, best)) }
}

func launchSelf(ranks: Int, _ extra: [String]) throws -> (median: Double, best: Double) {
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let p = Process()
    let out = Pipe()
    var a = [exe, "step-worker"] + extra + ["--repeats", String(repeats)]
    if let t = threadsOption { a += ["--threads", String(t)] }
    if ranks > 1 {
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments =
            [
                "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", String(ranks), "--bind-to", "none",
                "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none",
            ] + a
    } else {
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = Array(a.dropFirst())
    }
    p.standardOutput = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0,
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("step_seconds") })
    else { throw CollectiveError(rank: 0, operation: "bench run \(a)", cause: "exit \(p.terminationStatus): \(text)") }
    let f = line.split(separator: " ").compactMap { Double($0) }
    return (f[0], f[1])
}

switch mode {
case "allreduce":
    try allReduceBench()
case "step-worker":
    let global = Int(option("--global") ?? "") ?? 4
    try stepBench(global: global, overlap: option("--overlap") != "off", steps: repeats * 2)
case "step":
    let cores = ProcessInfo.processInfo.activeProcessorCount
    say("# data-parallel step time: decoder hidden 256 x 4 layers, micro-batch 4 x 128 tokens; \(cores) cores")
    say("# 1 rank, global batch 4 (the baseline: half the work of the 2-rank global batch 8)")
    say("config\tmedian_s\tbest_s\tratio_to_baseline(median)")
    // Interleaved A/B/C rounds on the shared machine.
    var base: [Double] = [], on: [Double] = [], off: [Double] = []
    for _ in 0..<2 {
        base.append(try launchSelf(ranks: 1, ["--global", "4"]).median)
        on.append(try launchSelf(ranks: 2, ["--global", "8", "--overlap", "on"]).median)
        off.append(try launchSelf(ranks: 2, ["--global", "8", "--overlap", "off"]).median)
    }
    let b = base.min()!
    say(String(format: "1 rank, global 4\t%.4f\t-\t1.000", b))
    say(String(format: "2 ranks, global 8, overlap on\t%.4f\t-\t%.3f", on.min()!, on.min()! / b))
    say(String(format: "2 ranks, global 8, overlap off\t%.4f\t-\t%.3f", off.min()!, off.min()! / b))
default:
    FileHandle.standardError.write(Data("unknown mode \(mode); modes: allreduce, step\n".utf8))
    exit(2)
}
