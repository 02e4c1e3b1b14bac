import Checkpoint
import Foundation
import Tensor
import Testing
import Training

#if canImport(Glibc)
    import Glibc
#endif

// Data-parallel training over Open MPI on loopback: `mpirun -np 2 TrainingProbe ...` against single
// processes of the same probe. CI installs Open MPI (scripts/setup.sh), so these run there.

/// `mpirun` on the PATH (Open MPI's launcher), or nil.
let mpirunPath: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

let mpiAvailable = mpirunPath != nil && probeBuilt

/// Rows of the rank-count-independent feed the probes share.
let dpRows = "64"

/// Starts the probe under `mpirun -np <ranks>` (or directly for ranks == 1 and `direct`).
func startParallelProbe(ranks: Int, _ dir: URL, steps: Int, every: Int = 100, options: [String], direct: Bool = false)
    throws -> (Process, Pipe)
{
    let p = Process()
    let args = [dir.path, String(steps), String(every), try sharedWorld.get().path, "--rows", dpRows] + options
    if direct {
        p.executableURL = URL(fileURLWithPath: probePath)
        p.arguments = args
    } else {
        p.executableURL = URL(fileURLWithPath: mpirunPath!)
        // Loopback only; single-copy shared memory needs ptrace rights containers often lack.
        p.arguments =
            [
                "--allow-run-as-root", "--oversubscribe", "-np", String(ranks), "--bind-to", "none",
                "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none",
            ] + [probePath] + args
    }
    let err = Pipe()
    p.standardOutput = FileHandle.nullDevice
    p.standardError = err
    try p.run()
    return (p, err)
}

/// Runs a probe to its end and returns its standard error.
@discardableResult
func runParallelProbe(ranks: Int, _ dir: URL, steps: Int, every: Int = 100, options: [String], direct: Bool = false)
    throws -> String
{
    let (p, err) = try startParallelProbe(ranks: ranks, dir, steps: steps, every: every, options: options, direct: direct)
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw TrainingError("\(ranks)-rank probe exited with \(p.terminationStatus): \(text.suffix(2000))")
    }
    return text
}

/// The newest checkpoint of a probe run.
func latestCheckpoint(_ dir: URL) throws -> TrainingCheckpoint {
    let d = try CheckpointDirectory(dir.appendingPathComponent("checkpoints").path)
    let (_, path) = try #require(try d.latest())
    return try TrainingCheckpoint.read(from: path)
}

/// Per tensor max|a - b| / max|b| over the model and the AdamW moments; the worst tensor.
///
/// The attention key biases (`self_attn.k_proj.bias`) are left out: their gradient is zero in exact
/// arithmetic (a key bias adds `q . b` to every logit of a query alike, and softmax ignores a shared
/// shift), so what reaches them is float rounding, which any change of summation order changes
/// completely, and AdamW normalises that noise to steps of the learning rate's size. (Measured here:
/// every other tensor within 2e-6; the key bias's moments differ by O(1) relative.)
func worstRelativeDifference(_ a: TrainingCheckpoint, _ b: TrainingCheckpoint) throws -> (String, Double) {
    var worst = ("(none)", 0.0)
    func compare(_ name: String, _ x: Tensor?, _ y: Tensor?) {
        if name.contains("self_attn.k_proj.bias") { return }
        guard let x, let y, x.shape == y.shape else {
            worst = (name + " (missing or mis-shaped)", .infinity)
            return
        }
        let (xs, ys) = (x.scalars, y.scalars)
        let scale = ys.map { abs(Double($0)) }.max() ?? 0
        let diff = zip(xs, ys).map { abs(Double($0) - Double($1)) }.max() ?? 0
        let rel = scale > 0 ? diff / scale : diff
        if rel > worst.1 || rel.isNaN { worst = (name, rel) }
    }
    #expect(Set(a.model.names) == Set(b.model.names))
    for name in b.model.names { compare("model/" + name, a.model[name], b.model[name]) }
    #expect(Set(a.optimizer.parameters.keys) == Set(b.optimizer.parameters.keys))
    for (p, slots) in b.optimizer.parameters {
        for name in slots.names { compare("optimizer/\(p)/\(name)", a.optimizer.parameters[p]?[name], slots[name]) }
    }
    #expect(a.optimizer.step == b.optimizer.step)
    return worst
}

/// One process, micro-batch 4 = global batch 4, 10 steps (computed once; several tests compare to it).
let singleRankReference: Result<URL, Error> = Result {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-ref-\(UUID().uuidString)")
    try runParallelProbe(ranks: 1, dir, steps: 10, options: ["--micro", "4", "--global", "4"], direct: true)
    return dir
}

/// A checkpoint written at `from` ranks, continued at `to` ranks.
struct RankMove: Sendable, CustomStringConvertible {
    var from: Int
    var to: Int
    var options: [String]
    var description: String { "\(from) -> \(to) ranks \(options.joined(separator: " "))" }
}

@Suite(.serialized, .enabled(if: mpiAvailable, "needs mpirun (apt: openmpi-bin libopenmpi-dev) and TrainingProbe"))
struct DataParallelTests {
    /// 2 ranks with micro-batch 2 give the same parameters and moments after 10 steps as 1 rank with
    /// batch 4 (the same global rows), with the all-reduce started from the gradient-ready hook (one
    /// default-size bucket), without overlap, and with ZeRO-1. (Many small buckets also match, e.g.
    /// `--bucket-mb 0.004`, but each all-reduce inside backward costs seconds on an oversubscribed
    /// 2-core machine: see docs/distributed.md.)
    @Test(arguments: [[String](), ["--no-overlap"], ["--zero"]])
    func twoRanksMatchOneRankWithTwiceTheBatch(options: [String]) throws {
        let reference = try latestCheckpoint(try singleRankReference.get())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-2-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try runParallelProbe(ranks: 2, dir, steps: 10, options: ["--micro", "2", "--global", "4"] + options)
        let got = try latestCheckpoint(dir)
        #expect(got.trainer.globalStep == 10)
        let (name, rel) = try worstRelativeDifference(got, reference)
        #expect(rel <= 1e-5, "\(options): \(name) differs by \(rel) relative")
    }

    /// A 2-rank run killed (SIGKILL to rank 0, the launcher ends rank 1) and resumed logs the same
    /// losses, bit for bit, as the uninterrupted 2-rank run.
    @Test func killedAndResumedTwoRankRunContinuesExactly() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dp-kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let options = ["--micro", "2", "--global", "4"]
        let straight = root.appendingPathComponent("straight")
        try runParallelProbe(ranks: 2, straight, steps: 8, every: 1, options: options)
        let want = Dictionary(uniqueKeysWithValues: loggedLosses(straight).map { ($0.0, $0.1) })
        #expect(want.count == 8)

        let run = root.appendingPathComponent("killed")
        let (p, err) = try startParallelProbe(ranks: 2, run, steps: 8, every: 1, options: options)
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && loggedLosses(run).count < 3 && Date() < deadline { usleep(5_000) }
        let pid = try #require(Int32(String(contentsOf: run.appendingPathComponent("pid-0"), encoding: .utf8)))
        #expect(p.isRunning, "the run ended before it could be killed")
        kill(pid, SIGKILL)
        _ = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        let before = loggedLosses(run).count
        #expect(before < 8)
        try runParallelProbe(ranks: 2, run, steps: 8, every: 1, options: options)
        let got = loggedLosses(run)
        #expect(Set(got.map(\.0)) == Set(1...8))
        for (step, bits) in got {
            #expect(want[step] == bits, "step \(step): \(bits) vs uninterrupted \(want[step] ?? "-")")
        }
    }

    /// A checkpoint written by 2 ranks continues on 1 rank, and one written by 1 rank continues on 2
    /// ranks (plain and ZeRO-1), ending where the uninterrupted run ends.
    @Test(arguments: [
        RankMove(from: 2, to: 1, options: []), RankMove(from: 1, to: 2, options: []),
        RankMove(from: 1, to: 2, options: ["--zero"]), RankMove(from: 2, to: 1, options: ["--zero"]),
    ])
    func checkpointsMoveBetweenRankCounts(move: RankMove) throws {
        let (from, to, options) = (move.from, move.to, move.options)
        let reference = try latestCheckpoint(try singleRankReference.get())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-move-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        func args(_ ranks: Int) -> [String] { ["--micro", String(4 / ranks), "--global", "4"] + options }
        try runParallelProbe(ranks: from, dir, steps: 10, options: args(from) + ["--stop-after", "5"], direct: from == 1)
        #expect(try latestCheckpoint(dir).trainer.globalStep == 5)
        try runParallelProbe(ranks: to, dir, steps: 10, options: args(to), direct: to == 1)
        let got = try latestCheckpoint(dir)
        #expect(got.trainer.globalStep == 10)
        let (name, rel) = try worstRelativeDifference(got, reference)
        #expect(rel <= 1e-5, "\(from) -> \(to) ranks \(options): \(name) differs by \(rel) relative")
    }

    /// A data error on rank 1 ends rank 0 too (it would otherwise wait in the all-reduce forever),
    /// within seconds, with the rank and the cause in the message.
    @Test func oneFailingRankEndsTheJob() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-fail-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let start = Date()
        let (p, err) = try startParallelProbe(
            ranks: 2, dir, steps: 50, options: ["--micro", "2", "--global", "4", "--fail", "1:3"])
        // The launcher closes the pipe when every rank has ended.
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        #expect(p.terminationStatus != 0)
        #expect(text.contains("rank 1 of 2"), "\(text.suffix(2000))")
        #expect(text.contains("simulated read error at batch 3 of rank 1"), "\(text.suffix(2000))")
        #expect(seconds < 60, "the job took \(seconds) s to end")
        // Rank 0 never got past the step rank 1 failed in.
        #expect(loggedLosses(dir).count <= 3)
    }
}
