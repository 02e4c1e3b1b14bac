import ArgumentParser
import Checkpoint
import Foundation

/// Hidden: reads one file fully and prints `OK 0` or `ERR 0 <message>`. `inspect` and `convert` run it
/// in a child process on HDF5 files from elsewhere, so that a libhdf5 crash becomes an error.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_probe", abstract: "Read one file fully in this process (used by inspect/convert).",
        shouldDisplay: false)

    @Option(help: "The path to read.") var path: String

    func run() throws {
        do {
            try TensorFileProbe.readFully(path)
            print("OK 0")
        } catch {
            print("ERR 0 " + "\(error)".replacingOccurrences(of: "\n", with: " "))
        }
    }
}
