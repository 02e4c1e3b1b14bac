import Foundation
import TensorFiles

/// The results of one evaluation, written as `eval.json` (schema in docs/evaluation.md).
///
/// Sections are present only when evaluated: `answers` (and `blind`) for question data, `captions`
/// for caption data, `perplexity` for held-out text.
public struct EvalReport: Codable, Equatable, Sendable {
    /// Always "sightline-eval".
    public var format = "sightline-eval"
    /// Schema version (1).
    public var version = 1
    /// The data file's name, its format, and the predictions file's name, when scored from files.
    public var data: String?
    public var dataFormat: String?
    public var predictions: String?
    /// Exact-match accuracy, per type and tag, with chance levels.
    public var answers: AnswerScores?
    /// The same questions answered with the image tokens zeroed, and the gain over them.
    public var blind: BlindComparison?
    /// CIDEr-D and BLEU.
    public var captions: CaptionScores?
    /// Held-out text-only perplexity.
    public var perplexity: PerplexityScores?

    enum CodingKeys: String, CodingKey {
        case format, version, data, predictions, answers, blind, captions, perplexity
        case dataFormat = "data_format"
    }

    public init() {}

    /// The file name results are written under.
    public static let fileName = "eval.json"

    /// Writes `eval.json` (sorted keys, indented) into `directory`, creating it if needed.
    /// - Returns: the file written.
    @discardableResult
    public func write(into directory: URL) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(Self.fileName)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try DurableFile.write(enc.encode(self), to: url.path)
        return url
    }

    /// Reads an `eval.json`.
    public static func read(_ url: URL) throws -> EvalReport {
        let d = try JSONFile.data(url)
        do { return try JSONDecoder().decode(EvalReport.self, from: d) } catch {
            throw EvaluationError(url.lastPathComponent, "not an eval.json: \(error)")
        }
    }

    /// A plain-text table of the results (what `trainer eval` prints).
    public var summary: String {
        var lines: [String] = []
        func pct(_ x: Double) -> String { String(format: "%6.1f%%", x * 100) }
        if let a = answers {
            let blindHeader = blind == nil ? "" : "    blind"
            lines.append("group                          n   accuracy    chance  majority\(blindHeader)")
            func row(_ name: String, _ g: GroupScore, _ b: GroupScore?) {
                let padded =
                    name.count >= 24
                    ? String(name.prefix(24)) : name + String(repeating: " ", count: 24 - name.count)
                var s =
                    "\(padded) \(String(format: "%7d", g.questions))   \(pct(g.accuracy))   \(pct(g.chance))   \(pct(g.majority))"
                if let b { s += "  \(pct(b.accuracy))" }
                lines.append(s)
            }
            row("all", a.overall, blind?.blind.overall)
            for k in a.perType.keys.sorted() where a.perType.count > 1 || k != "all" {
                row("type \(k)", a.perType[k]!, blind?.blind.perType[k])
            }
            for k in a.perAnswerType.keys.sorted() {
                row("answer type \(k)", a.perAnswerType[k]!, blind?.blind.perAnswerType[k])
            }
            for k in a.perTag.keys.sorted() { row("tag \(k)", a.perTag[k]!, blind?.blind.perTag[k]) }
            if let v = a.overall.vqaAccuracy { lines.append("VQA consensus accuracy: \(pct(v))") }
        }
        if let c = captions {
            lines.append(
                String(format: "captions: %d images, CIDEr-D %.4f, BLEU-4 %.4f", c.images, c.ciderD, c.bleu4))
        }
        if let p = perplexity {
            lines.append(
                String(
                    format: "perplexity %.4f (%d tokens, mean NLL %.4f nats)", p.perplexity, p.tokens,
                    p.meanNLL))
        }
        return lines.joined(separator: "\n")
    }
}

/// Scoring of a predictions file against evaluation data: the library call behind `trainer eval`.
public enum Evaluator {
    /// Scores predictions (and optionally blind predictions) against data.
    /// - Parameters:
    ///   - data: questions or captions (see `EvalDataFormat`).
    ///   - format: nil infers it from the file.
    ///   - questions: the VQA questions file, with VQA annotations only.
    ///   - predictions: the model's answers or captions (see `Predictions.load`).
    ///   - blindPredictions: answers of the same model with the image tokens zeroed (question data only).
    /// - Throws: `EvaluationError` naming the file and record for any bad input, missing or unknown ids.
    public static func score(
        data: URL, format: EvalDataFormat? = nil, questions: URL? = nil, predictions: URL,
        blindPredictions: URL? = nil
    ) throws -> EvalReport {
        let fmt = try format ?? EvalDataFormat.infer(data)
        let loaded = try EvalData.load(data, format: fmt, questions: questions)
        let preds = try Predictions.load(predictions)
        var report = EvalReport()
        report.data = data.lastPathComponent
        report.dataFormat = fmt.rawValue
        report.predictions = predictions.lastPathComponent
        switch loaded {
        case .questions(let qs):
            let main = try AnswerScoring.score(
                questions: qs, predictions: preds, source: predictions.lastPathComponent)
            report.answers = main
            if let b = blindPredictions {
                let blind = try AnswerScoring.score(
                    questions: qs, predictions: try Predictions.load(b), source: b.lastPathComponent)
                report.blind = BlindComparison(main: main, blind: blind)
            }
        case .captions(let refs):
            if let b = blindPredictions {
                throw EvaluationError(b.lastPathComponent, "blind predictions apply to question data only")
            }
            report.captions = try CaptionScores(
                try examples(refs, preds, source: predictions.lastPathComponent))
        }
        return report
    }

    /// Pairs caption predictions with references.
    /// - Throws: `EvaluationError` for images without a prediction or predictions for unknown images.
    public static func examples(_ refs: [CaptionReference], _ preds: [String: String], source: String) throws
        -> [CaptionExample]
    {
        let missing = refs.filter { preds[$0.id] == nil }.map(\.id)
        if !missing.isEmpty {
            throw EvaluationError(
                source,
                "\(missing.count) of \(refs.count) images have no caption (first: \(missing.prefix(5).joined(separator: ", ")))"
            )
        }
        let known = Set(refs.map(\.id))
        let unknown = preds.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw EvaluationError(
                source,
                "\(unknown.count) captions name no image in the data (first: \(unknown.prefix(5).joined(separator: ", ")))"
            )
        }
        return refs.map { CaptionExample(id: $0.id, candidate: preds[$0.id]!, references: $0.references) }
    }
}
