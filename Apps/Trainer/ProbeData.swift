import ArgumentParser
import Datasets
import Foundation
import ImagePipeline

/// Test helper (hidden): reads one data file fully through the real readers and prints one line,
/// `OK <records> <problems>` or `ERR <message>`, then each problem as `PROBLEM <text>`. The corruption
/// loop (scripts/corruption_loop.py) runs it in a child process with a memory limit and a timeout.
struct ProbeData: ParsableCommand {
    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case captions, interleaved, text, llava, tar, png, jpeg
    }

    static let configuration = CommandConfiguration(
        commandName: "_probe-data", abstract: "Read a data file fully, one result line (tests).",
        shouldDisplay: false)

    @Option(help: "What the file is: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kind: Kind

    @Argument var path: String

    func run() throws {
        do {
            let url = URL(fileURLWithPath: path)
            switch kind {
            case .png, .jpeg:
                let image = try ImageCodec.decode(contentsOf: path)
                print("OK 1 0 \(image.width)x\(image.height)")
                return
            default:
                break
            }
            let format: SourceFormat
            switch kind {
            case .captions: format = .imageCaptionJSONL
            case .interleaved: format = .interleavedJSONL
            case .text: format = .textJSONL
            case .llava: format = .llava
            default: format = .webDataset
            }
            var problems: [String] = []
            let log = ProblemLog(maximumFraction: 1, minimumRecords: Int.max) { problems.append("\($0)") }
            let source = try DataSource(name: "probe", format: format, files: [url], problems: log)
            var records = 0
            while let sample = try source.next() {
                records += 1
                for part in sample.parts {
                    if case .image(let ref) = part {
                        do { _ = try PipelineImages.image(ref) } catch { problems.append("\(sample.name): \(error)") }
                    }
                }
            }
            print("OK \(records) \(problems.count)")
            for p in problems { print("PROBLEM " + p.replacingOccurrences(of: "\n", with: " ")) }
        } catch {
            print("ERR " + "\(error)".replacingOccurrences(of: "\n", with: " "))
        }
    }
}
