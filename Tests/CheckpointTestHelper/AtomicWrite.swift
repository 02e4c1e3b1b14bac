import ArgumentParser
import Foundation
import TensorFiles

/// Test helper (hidden): writes `--text` to `--path` atomically with `DurableFile.write`, or with
/// Foundation's `atomically: true` under `--foundation`, and prints the temporary directory it sees.
/// The atomic-write test runs it with `TMPDIR` pointing at a fresh directory and then lists what the
/// writes left there.
struct AtomicWrite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_atomic-write", abstract: "Write one file atomically (tests).", shouldDisplay: false)

    @Option(help: "The file to write.") var path: String
    @Option(help: "Its text.") var text: String
    @Option(help: "How many times to write it.") var times = 1
    @Flag(help: "Use Foundation's atomic write instead of DurableFile (the control).") var foundation = false

    func run() throws {
        print(NSTemporaryDirectory())
        for _ in 0..<times {
            if foundation {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
            } else {
                try DurableFile.write(text, to: path)
            }
        }
    }
}
