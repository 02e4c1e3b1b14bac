import Foundation
@_spi(FileSupport) import TensorFiles

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A directory of step-numbered training checkpoints (`checkpoint-000001200.h5`) with a `latest`
/// pointer file naming the newest complete one, keeping the last `keep`.
///
/// A save is crash-safe: the checkpoint is written under a temporary name, flushed and fsynced,
/// renamed to its step-numbered name, and the directory fsynced; only then is `latest` replaced
/// (written to a temporary file, fsynced, renamed, directory fsynced). A process killed at any point
/// leaves `latest` naming a complete checkpoint (or absent, before the first save), and a save that
/// fails leaves the previous checkpoints and `latest` untouched. One process writes a directory at a
/// time.
///
/// ```swift
/// let dir = try CheckpointDirectory("runs/exp1/checkpoints", keep: 3)
/// try dir.save(checkpoint, step: 1200)
/// if let resumed = try dir.loadLatest() { ... }
/// ```
public final class CheckpointDirectory {
    /// Where a save is when a fault-injection hook runs (for tests).
    public enum SaveStage: Sendable {
        /// The temporary file is written and synced but not renamed.
        case temporaryWritten
        /// The step-numbered file is in place; `latest` still names the previous checkpoint.
        case renamed
    }

    /// The directory.
    public let path: String
    /// How many checkpoints to keep (at least 1).
    public let keep: Int
    /// Name of the pointer file.
    public static let pointerName = "latest"
    /// Called at each stage of a save; a thrown error aborts the save there (tests use it to show
    /// that a failed save leaves the previous checkpoint loadable).
    public var faultInjection: ((SaveStage) throws -> Void)?

    /// Opens (creating when needed) the checkpoint directory `path`.
    public init(_ path: String, keep: Int = 3) throws {
        self.path = path
        self.keep = max(1, keep)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TensorFileError(
                file: path, "cannot create the checkpoint directory: \(error.localizedDescription)")
        }
    }

    /// The file name of the checkpoint for `step`.
    public static func fileName(step: Int) -> String {
        let digits = String(step)
        return "checkpoint-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits + ".h5"
    }

    /// The step of a checkpoint file name, or nil when `name` is not one.
    public static func step(ofFileName name: String) -> Int? {
        guard name.hasPrefix("checkpoint-"), name.hasSuffix(".h5") else { return nil }
        let digits = name.dropFirst("checkpoint-".count).dropLast(3)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        return Int(digits)
    }

    /// Steps of the checkpoint files present, ascending.
    public func savedSteps() throws -> [Int] {
        try entries().compactMap(CheckpointDirectory.step(ofFileName:)).sorted()
    }

    /// Saves `checkpoint` as the checkpoint of `step`, points `latest` at it, and removes the oldest
    /// checkpoints beyond `keep`.
    /// - Returns: the path of the new checkpoint file.
    /// - Throws: `TensorFileError`; the previous checkpoints and `latest` are then untouched.
    @discardableResult
    public func save(_ checkpoint: TrainingCheckpoint, step: Int) throws -> String {
        guard step >= 0 else { throw TensorFileError(file: path, "step \(step) is negative") }
        removeStaleTemporaries()
        let name = CheckpointDirectory.fileName(step: step)
        let final = path + "/" + name
        let tmp = DurableFile.temporaryPath(for: final)
        do {
            try checkpoint.writeHDF5(tmp, reportAs: final)
            try DurableFile.fsync(path: tmp)
            try faultInjection?(.temporaryWritten)
        } catch {
            unlink(tmp)
            throw error
        }
        try DurableFile.rename(tmp, to: final)
        try faultInjection?(.renamed)
        try DurableFile.write(Array((name + "\n").utf8), to: path + "/" + CheckpointDirectory.pointerName)
        prune(current: name)
        return final
    }

    /// The step and path `latest` names, or nil before the first save.
    /// - Throws: `TensorFileError` when `latest` is unreadable or names something that is not a checkpoint file.
    public func latest() throws -> (step: Int, path: String)? {
        let pointer = path + "/" + CheckpointDirectory.pointerName
        guard fileExists(pointer) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: pointer)) } catch {
            throw TensorFileError(file: pointer, "cannot read: \(error.localizedDescription)")
        }
        let name = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let step = CheckpointDirectory.step(ofFileName: name) else {
            throw TensorFileError(file: pointer, "does not name a checkpoint file: '\(name.prefix(80))'")
        }
        return (step, path + "/" + name)
    }

    /// A checkpoint found by `latestVerified()`.
    public struct VerifiedCheckpoint {
        /// The step it was saved at.
        public var step: Int
        /// Its file.
        public var path: String
        /// Its contents (checksum verified, fully read).
        public var checkpoint: TrainingCheckpoint
        /// Newer checkpoints refused on the way, newest first: each file and why.
        public var refused: [(path: String, reason: String)]
        /// What happened, for the log: the checkpoint resumed from and any refused ones.
        public var summary: String {
            guard !refused.isEmpty else { return "resuming from \(path) (step \(step))" }
            let why = refused.map { "\($0.path): \($0.reason)" }.joined(separator: "; ")
            return "refused \(refused.count) newer checkpoint(s) (\(why)); resuming from \(path) (step \(step)), the newest that verifies"
        }
    }

    /// The newest checkpoint that verifies, for `resume: auto`: the one `latest` names, or, when that
    /// one is damaged (checksum mismatch, unreadable) or `latest` itself is, the newest earlier
    /// checkpoint whose checksum matches and which reads completely. Refused files are kept on disk
    /// and listed in the result (`summary` says what happened).
    /// - Returns: nil when the directory holds no checkpoint at all.
    /// - Throws: `TensorFileError` naming the directory when checkpoints exist but none verifies.
    public func latestVerified() throws -> VerifiedCheckpoint? {
        var refused: [(path: String, reason: String)] = []
        var newest = Int.max
        do {
            if let (step, _) = try latest() { newest = step }
        } catch let e as TensorFileError {
            refused.append((e.file, e.message))
        }
        let steps = try savedSteps().filter { $0 <= newest }.sorted(by: >)
        for step in steps {
            let file = path + "/" + CheckpointDirectory.fileName(step: step)
            do {
                let c = try TrainingCheckpoint.read(from: file)
                return VerifiedCheckpoint(step: step, path: file, checkpoint: c, refused: refused)
            } catch let e as TensorFileError {
                refused.append((file, e.message))
            }
        }
        if refused.isEmpty { return nil }
        throw TensorFileError(
            file: path,
            "no checkpoint verifies: " + refused.map { "\($0.path): \($0.reason)" }.joined(separator: "; "))
    }

    /// Loads the checkpoint `latest` names, or nil before the first save.
    public func loadLatest() throws -> TrainingCheckpoint? {
        guard let (_, file) = try latest() else { return nil }
        return try TrainingCheckpoint.read(from: file)
    }

    /// Loads the checkpoint of `step`.
    public func load(step: Int) throws -> TrainingCheckpoint {
        try TrainingCheckpoint.read(from: path + "/" + CheckpointDirectory.fileName(step: step))
    }

    private func entries() throws -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw TensorFileError(file: path, "cannot list: \(error.localizedDescription)")
        }
    }

    /// Removes checkpoint files beyond the newest `keep`, never the one `latest` names.
    private func prune(current: String) {
        guard let steps = try? savedSteps(), steps.count > keep else { return }
        for s in steps.dropLast(keep) {
            let name = CheckpointDirectory.fileName(step: s)
            if name != current { unlink(path + "/" + name) }
        }
    }

    /// Removes temporary files left by saves of processes that no longer run (killed mid-save).
    private func removeStaleTemporaries() {
        DurableFile.removeStaleTemporaries(inDirectory: path)
    }
}
