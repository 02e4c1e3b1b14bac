import ArgumentParser

/// The Checkpoint tests' child process (not shipped): `_crash-helper` saves checkpoints until it is
/// killed, `_probe` reads files fully so that a crash inside libhdf5 is counted, not fatal,
/// `_atomic-write` writes one file atomically (what it leaves in the temporary directory is checked).
@main
struct CheckpointTestHelper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "CheckpointTestHelper",
        abstract: "Child processes for the Checkpoint tests (crash safety, corrupted files).",
        subcommands: [CrashHelper.self, Probe.self, AtomicWrite.self])
}
