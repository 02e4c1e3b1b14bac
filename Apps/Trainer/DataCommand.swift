import ArgumentParser
import Datasets
import Foundation

/// `trainer data`: data tools.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Check training data files.", subcommands: [DataCheck.self])
}

/// `trainer data check FILES...`: every bad record of every file, with file and line.
struct DataCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract:
            "Read every record of data files, decoding every image, and report each bad record with file and line.",
        discussion: """
            Formats: image-caption, interleaved and text JSONL, plain text, LLaVA JSON/JSONL and WebDataset \
            tar shards. Each file's format is inferred from its extension (.tar, .txt, .json) or, for .jsonl, \
            from its first record's keys, unless --format is given. Exits with status 1 when any record is bad.
            """)

    @Option(help: "The format of every file (default: inferred per file).")
    var format: SourceFormat?

    @Argument(help: "Data files to check.")
    var files: [String]

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one data file") }
    }

    func run() throws {
        let results = try checkData(files: files.map { URL(fileURLWithPath: $0) }, format: format)
        for r in results { print(r.description) }
        let bad = results.reduce(0) { $0 + $1.report.problems.count }
        if bad > 0 {
            FileHandle.standardError.write(Data("data check: \(bad) bad records\n".utf8))
            throw ExitCode.failure
        }
    }
}

extension SourceFormat: @retroactive ExpressibleByArgument {}
