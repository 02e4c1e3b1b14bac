import Foundation
import Testing

// The shipped `trainer` binary, run as a user would: bad input exits non-zero with a message naming the
// value; a machine without OpenBLAS (simulated by pointing the loader at a missing library) gets an
// error saying what to install from the first matrix product, not a trap.

/// The `trainer` executable built next to this test bundle (or `SIGHTLINE_TRAINER_BIN`).
func trainerExecutable() -> String? {
    if let env = ProcessInfo.processInfo.environment["SIGHTLINE_TRAINER_BIN"] { return env }
    let exe =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("trainer").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

/// Runs `trainer` with `arguments` and extra environment; returns the exit status, whether a signal
/// ended it, and what it wrote to stdout and stderr together.
func runTrainer(_ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: Int32, signaled: Bool, output: String)?
{
    guard let exe = trainerExecutable() else { return nil }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, p.terminationReason == .uncaughtSignal, String(decoding: data, as: UTF8.self))
}

@Suite struct TrainerCommandTests {
    @Test(arguments: [(["--threads", "0"], "0"), (["--threads=-3"], "-3")])
    func nonPositiveThreadsExitWithAMessage(_ option: [String], _ threads: String) throws {
        guard let r = try runTrainer(["smoke"] + option + ["--size", "8", "--repeats", "1"]) else {
            Issue.record("the trainer executable is not next to the test bundle; build everything first")
            return
        }
        #expect(!r.signaled, "trainer trapped: \(r.output)")
        #expect(r.status != 0)
        #expect(r.output.contains("--threads must be at least 1, got \(threads)"), "\(r.output)")
    }

    @Test func missingOpenBLASMakesTheFirstMatmulThrowWhatToInstall() throws {
        guard
            let r = try runTrainer(
                ["smoke", "--size", "8", "--repeats", "1"],
                environment: ["SIGHTLINE_OPENBLAS": "/nonexistent/libopenblas.so.0"])
        else {
            Issue.record("the trainer executable is not next to the test bundle; build everything first")
            return
        }
        #expect(!r.signaled, "trainer trapped: \(r.output)")
        #expect(r.status != 0)
        #expect(r.output.contains("matmul"), "\(r.output)")
        #expect(r.output.contains("/nonexistent/libopenblas.so.0"), "\(r.output)")
        #expect(r.output.contains("apt-get install libopenblas0"), "\(r.output)")
    }

    @Test func aValidSmokeRunSucceeds() throws {
        guard let r = try runTrainer(["smoke", "--threads", "1", "--size", "16", "--repeats", "1"]) else {
            Issue.record("the trainer executable is not next to the test bundle; build everything first")
            return
        }
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("sgemm 16x16x16"), "\(r.output)")
    }
}
