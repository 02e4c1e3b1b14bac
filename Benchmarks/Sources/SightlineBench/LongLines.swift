import Datasets
import Foundation

/// JSONL lines of 8 MB and 24 MB read through `DataSource` (moved here from the unit tests, which
/// must not time anything): a reader linear in the line's length reads both at the same MB/s, so the
/// 24 MB row's ratio to the 8 MB baseline stays near 1 (a reader that rescans its buffer per block
/// falls toward 1/3).
func longLineSuite(_ report: Report, repeats: Int) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-bench-lines-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var baseline: Row?
    for mb in [8, 24] {
        let url = dir.appendingPathComponent("text\(mb).jsonl")
        let big = String(repeating: "x", count: mb << 20)
        try Data([#"{"text": "first"}"#, #"{"text": "\#(big)"}"#, #"{"text": "last"}"#].joined(separator: "\n").utf8)
            .write(to: url)
        let r = try measure(repeats: repeats, warmup: 1, work: Double(mb)) {
            let log = ProblemLog(maximumFraction: 1.01, minimumRecords: 0, sink: { _ in })
            let src = try DataSource(name: "t", format: .textJSONL, files: [url], problems: log)
            src.maxRecordBytes = 32 << 20
            var n = 0
            while try src.next() != nil { n += 1 }
            precondition(n == 3 && log.problems.isEmpty, "read \(n) records, problems \(log.problems)")
        }
        let row = report.add("datasets", "JSONL with one \(mb) MB line", unit: "MB/s", r, baseline: baseline)
        if baseline == nil { baseline = row }
    }
}
