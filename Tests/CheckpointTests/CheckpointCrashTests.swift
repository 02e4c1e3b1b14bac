import Checkpoint
import Foundation
import SightlineTestSupport
import Tensor
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CheckpointCrashTests {
    /// What `CheckpointTestHelper _crash-helper` saves for `step` (the same formula as Tests/CheckpointTestHelper/CrashHelper.swift).
    static func expectedModelValue(step: Int, tensor k: Int, element i: Int) -> Float {
        Float(step) * 0.5 + Float((i + k) % 97)
    }

    /// Whether `c` is the complete checkpoint of `step`; returns what is wrong otherwise.
    static func problem(_ c: TrainingCheckpoint, step: Int, size: Int) -> String? {
        let names = ["embed.weight", "block.0.weight", "block.1.weight", "head.bias"]
        guard c.model.names == names else { return "model names \(c.model.names)" }
        for (k, name) in names.enumerated() {
            let v = c.model[name]!.scalars
            guard v.count == size else { return "\(name) has \(v.count) values" }
            for i in 0..<size where v[i] != expectedModelValue(step: step, tensor: k, element: i) {
                return "\(name)[\(i)] = \(v[i])"
            }
            guard let avg = c.optimizer.parameters[name]?["exp_avg"]?.scalars, avg == v.map({ $0 * 2 }) else {
                return "optimizer state of \(name)"
            }
        }
        guard c.optimizer.step == step, c.trainer.globalStep == step else {
            return "steps \(c.optimizer.step), \(c.trainer.globalStep)"
        }
        guard let rng = try? c.trainer.documents.decode(RandomGenerator.self, TrainerState.Key.rngStates),
            rng == RandomGenerator(seed: UInt64(step), offset: UInt64(step) * 3)
        else { return "rng state" }
        guard let cursor = try? c.trainer.documents.decode([String: Int].self, TrainerState.Key.dataCursor),
            cursor == ["step": step, "sample": step * 10]
        else { return "data cursor" }
        return nil
    }

    /// A child process saves checkpoints in a loop and is SIGKILLed at a random moment, 120 times.
    /// After every kill, `latest` must name a complete checkpoint (none torn) at least as new as the
    /// last save the child reported finished (none lost).
    @Test func killedSaverAlwaysLeavesACompleteLatest() throws {
        guard let exe = testHelperExecutable() else {
            Issue.record(
                "the CheckpointTestHelper executable is not next to the test bundle; build everything (swift build) first")
            return
        }
        let dir = TempDir()
        defer { dir.cleanup() }
        let ck = dir.file("checkpoints")
        let size = 8192
        var g = SplitMix(0xC0FFEE)
        var torn: [String] = [], lost: [String] = []
        var acknowledged = 0, kills = 0, midSave = 0, totalSaves = 0
        for cycle in 0..<120 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = ["_crash-helper", ck, "--keep", "2", "--size", String(size)]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            final class Output: @unchecked Sendable {
                let lock = NSLock()
                var data = Data()
                var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
            }
            let output = Output()
            let reader = DispatchGroup()
            reader.enter()
            DispatchQueue.global().async {
                while case let chunk = out.fileHandleForReading.availableData, !chunk.isEmpty {
                    output.lock.withLock { output.data.append(chunk) }
                }
                reader.leave()
            }
            try p.run()
            // Kill at a random moment of the save loop: after start-up, within the first few saves
            // (a save takes some tens of milliseconds, most of it in fsync).
            let started = Date()
            while !output.text.contains("ready") && p.isRunning && Date().timeIntervalSince(started) < 20 {
                usleep(1000)
            }
            usleep(UInt32.random(in: 0...80_000, using: &g))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            reader.wait()
            if p.terminationReason == .uncaughtSignal { kills += 1 }
            let text = output.text
            let saved = text.split(separator: "\n").compactMap {
                $0.hasPrefix("saved ") ? Int($0.dropFirst(6)) : nil
            }
            totalSaves += saved.count
            acknowledged = max(acknowledged, saved.max() ?? 0)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: ck)) ?? []
            if names.contains(where: { $0.contains(".tmp-\(p.processIdentifier)-") }) { midSave += 1 }

            let directory = try CheckpointDirectory(ck, keep: 2)
            guard let (step, path) = try directory.latest() else {
                if acknowledged > 0 {
                    lost.append("cycle \(cycle): no latest after step \(acknowledged) was saved")
                }
                continue
            }
            if step < acknowledged {
                lost.append("cycle \(cycle): latest is \(step), \(acknowledged) was saved")
            }
            do {
                if let why = CheckpointCrashTests.problem(
                    try TrainingCheckpoint.read(from: path), step: step, size: size)
                {
                    torn.append("cycle \(cycle) step \(step): \(why)")
                }
            } catch {
                torn.append("cycle \(cycle) step \(step): \(error)")
            }
        }
        print(
            "crash test: \(kills) kills, \(totalSaves) saves, \(midSave) kills left a partial temporary file, torn \(torn.count), lost \(lost.count)"
        )
        #expect(kills >= 100)
        #expect(torn.isEmpty, "\(torn.prefix(3).map { $0.prefix(400) })")
        #expect(lost.isEmpty, "\(lost.prefix(3))")
        #expect(totalSaves > 0, "the helper never finished a save")
        #expect(midSave > 0, "no kill landed inside a save; the test would not show anything")
    }
}
