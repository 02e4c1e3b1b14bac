import Foundation
import SightlineTestSupport
import Testing
import Training

#if canImport(Glibc)
    import Glibc
#endif

/// The TrainingProbe executable next to the test bundle (built by `swift build --build-tests`).
let probePath: String = {
    let exe =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
    // The test binary sits in <bin>/SightlinePackageTests.xctest (a file on Linux, a bundle on macOS).
    while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("TrainingProbe").path) {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("TrainingProbe").path
}()

let probeBuilt = FileManager.default.isExecutableFile(atPath: probePath)

/// Lines of `losses.txt`: (step, loss bits, z-loss bits).
func loggedLosses(_ dir: URL) -> [(Int, String)] {
    guard let text = try? String(contentsOf: dir.appendingPathComponent("losses.txt"), encoding: .utf8) else {
        return []
    }
    return text.split(separator: "\n").compactMap { line in
        let parts = line.split(separator: " ")
        guard parts.count == 3, let s = Int(parts[0]) else { return nil }  // a torn last line
        return (s, parts[1] + " " + parts[2])
    }
}

func startProbe(_ dir: URL, steps: Int) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: probePath)
    p.arguments = [dir.path, String(steps), "1", try sharedWorld.get().path]
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return p
}

/// Waits until the probe has logged at least `step` steps (or exited).
func wait(_ p: Process, _ dir: URL, until step: Int) {
    let deadline = Date().addingTimeInterval(120)
    while p.isRunning && loggedLosses(dir).count < step && Date() < deadline { usleep(2_000) }
}

@Suite(.serialized) struct TrainingProcessTests {
    /// SIGKILL at random steps (5 kills, seeded), resume each time with `resume: auto`: every logged
    /// loss equals the uninterrupted run's, bit for bit (same thread count).
    @Test(.enabled(if: probeBuilt, "TrainingProbe not built")) func killedAndResumedRunLogsTheSameLosses() throws {
        let steps = 16
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let reference = root.appendingPathComponent("reference")
        let straight = try startProbe(reference, steps: steps)
        straight.waitUntilExit()
        #expect(straight.terminationStatus == 0)
        let want = Dictionary(uniqueKeysWithValues: loggedLosses(reference).map { ($0.0, $0.1) })
        #expect(want.count == steps)

        let run = root.appendingPathComponent("killed")
        var rng = SplitMix(16)
        var kills = 0
        var launches = 0
        while launches < 40 {
            let p = try startProbe(run, steps: steps)
            launches += 1
            if kills < 5 {
                let done = loggedLosses(run).count
                // Kill after 1...3 more logged steps, plus a random delay inside the step.
                wait(p, run, until: done + Int.random(in: 1...3, using: &rng))
                usleep(UInt32.random(in: 0...20_000, using: &rng))
                if p.isRunning {
                    kill(p.processIdentifier, SIGKILL)
                    p.waitUntilExit()
                    #expect(p.terminationReason == .uncaughtSignal)
                    kills += 1
                    continue
                }
            }
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            if p.terminationStatus == 0 && kills >= 5 { break }
            if p.terminationStatus != 0 { break }
        }
        #expect(kills >= 5, "only \(kills) kills landed")
        let got = loggedLosses(run)
        #expect(Set(got.map(\.0)) == Set(1...steps))
        #expect(got.count > steps, "steps after each kill are redone from the last checkpoint")
        for (step, bits) in got {
            #expect(want[step] == bits, "step \(step): \(bits) vs uninterrupted \(want[step] ?? "-")")
        }
    }

    /// SIGTERM mid-run: the current step finishes, a checkpoint is saved, the process exits 0; a
    /// relaunch continues from it.
    @Test(.enabled(if: probeBuilt, "TrainingProbe not built")) func sigtermSavesAndExitsZero() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("term-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = try startProbe(dir, steps: 200)
        wait(p, dir, until: 2)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 0)
        let logged = loggedLosses(dir).map(\.0)
        let last = try #require(logged.last)
        #expect(last < 200)
        let pointer = try String(
            contentsOf: dir.appendingPathComponent("checkpoints/latest"), encoding: .utf8)
        #expect(pointer.trimmingCharacters(in: .whitespacesAndNewlines) == "checkpoint-" + String(format: "%09d", last) + ".h5")
    }
}
