import ArgumentParser
import Checkpoint
import Foundation
import TensorFiles

/// Test helper (hidden): opens each file and reads every tensor, printing one line per file:
/// `OK <index>` or `ERR <index> <message>`. The corruption test runs HDF5 files through it in a child
/// process, so that a crash inside libhdf5 is counted instead of ending the test run.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_probe", abstract: "Read files fully, one result line each (tests).",
        shouldDisplay: false)

    @Option(help: "A file listing the paths to read, one per line.") var list: String?
    @Option(help: "One path to read (instead of --list).") var path: String?
    @Option(help: "Index of the first path to read.") var start = 0

    func run() throws {
        let paths =
            try list.map { try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n").map(String.init) }
            ?? (path.map { [$0] } ?? [])
        for i in start..<paths.count {
            do {
                try TensorFileProbe.readFully(paths[i])
                print("OK \(i)")
            } catch {
                print("ERR \(i) " + "\(error)".replacingOccurrences(of: "\n", with: " "))
            }
            fflush(stdout)
        }
    }
}
