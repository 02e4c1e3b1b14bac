import Foundation

extension SourceFormat {
    /// Infers a data file's format: `.tar` is `webDataset`, `.txt` `plainText`, `.json` `llava`; a
    /// `.jsonl` file by the keys of its first record that parses: `conversations` (llava), `texts`
    /// (interleaved), `caption` (image-caption), `text` (text).
    /// - Throws: `DatasetError` naming the file when the extension or keys fit no format.
    public static func infer(_ url: URL) throws -> SourceFormat {
        let name = url.lastPathComponent
        switch url.pathExtension.lowercased() {
        case "tar": return .webDataset
        case "txt": return .plainText
        case "json": return .llava
        case "jsonl":
            let reader = try LineReader(url: url, offset: 0)
            var lineNo = 0
            while let (line, _) = try reader.next() {
                lineNo += 1
                guard let o = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                    continue
                }
                if o["conversations"] != nil { return .llava }
                if o["texts"] != nil { return .interleavedJSONL }
                if o["caption"] != nil { return .imageCaptionJSONL }
                if o["text"] != nil { return .textJSONL }
                throw DatasetError(
                    "data",
                    "\(name):\(lineNo): cannot tell the format from the keys \(o.keys.sorted()); pass --format"
                )
            }
            throw DatasetError(
                "data", "\(name): no JSON object on any line; cannot tell the format, pass --format")
        default:
            throw DatasetError(
                "data",
                "\(name): cannot tell the format from the extension .\(url.pathExtension); pass --format")
        }
    }
}

/// One file's result of `checkData`.
public struct DataCheckResult: Sendable {
    public var file: URL
    public var format: SourceFormat
    public var report: ValidationReport

    /// One line for the file, then one line per bad record ("file:line: what is wrong").
    public var description: String {
        "\(file.lastPathComponent) (\(format.rawValue)): \(report.records) records, \(report.goodRecords) good, "
            + "\(report.images) images, \(report.problems.count) bad"
            + report.problems.map { "\n  \($0.message)" }.joined()
    }
}

/// Validates data files one by one (each with its given or inferred format) through `validate`, decoding
/// every image: the library call behind `trainer data check`.
/// - Parameters:
///   - format: the format of every file; nil infers each file's (`SourceFormat.infer`).
///   - decoder: the image decoder (default `PipelineImages.decode`: JPEG and PNG).
/// - Returns: one result per file, in order; bad records are in the reports, not thrown.
/// - Throws: `DatasetError` for a file that does not exist or whose format cannot be inferred.
public func checkData(
    files: [URL], format: SourceFormat? = nil, decoder: @escaping ImageDecoder = PipelineImages.decode
) throws
    -> [DataCheckResult]
{
    guard !files.isEmpty else { throw DatasetError("data", "no files to check") }
    for f in files {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: f.path, isDirectory: &isDirectory),
            !isDirectory.boolValue
        else {
            throw DatasetError("data", "\(f.path): no such file")
        }
    }
    return try files.map { f in
        let fmt = try format ?? SourceFormat.infer(f)
        return DataCheckResult(
            file: f, format: fmt, report: try validate(format: fmt, files: [f], decoder: decoder))
    }
}
