import Foundation

/// The evaluation data formats `EvalData.load` reads (documented in docs/evaluation.md).
public enum EvalDataFormat: String, CaseIterable, Codable, Sendable {
    /// VQA annotations JSON: `{"annotations": [{"question_id", "question_type", "answer_type",
    /// "multiple_choice_answer", "answers": [{"answer"}, ...]}]}`, optionally with the matching
    /// questions JSON `{"questions": [{"question_id", "question"}]}`.
    case vqa
    /// LLaVA conversation JSON (an array) or JSONL: each human turn followed by an assistant turn is
    /// one question, id `"<item id>#<k>"` (k counts the item's questions from 0); its type and tags from
    /// the turns' or the item's `"type"` and `"tags"`.
    case llava
    /// Our question JSONL: `{"id", "question", "answer" (or "answers": [...]), "type", "answer_type",
    /// "tags": [...], "image"}` per line; `id` and an answer are required.
    case qaJSONL = "qa-jsonl"
    /// COCO caption annotations JSON: `{"annotations": [{"image_id", "caption"}, ...]}`, grouped by image.
    case cocoCaptions = "coco-captions"
    /// Our caption JSONL: `{"id", "captions": [...]}` (or one `"caption"`) per line, one image per line.
    case captionJSONL = "caption-jsonl"

    /// Infers the format from the extension and the first record's keys.
    /// - Throws: `EvaluationError` naming the file when no format fits.
    public static func infer(_ url: URL) throws -> EvalDataFormat {
        let name = url.lastPathComponent
        switch url.pathExtension.lowercased() {
        case "json":
            let root = try JSONFile.object(url)
            if root is [Any] { return .llava }
            guard let o = root as? [String: Any] else {
                throw EvaluationError(name, "neither a JSON array (LLaVA) nor an object (VQA, COCO captions)")
            }
            if let a = o["annotations"] as? [[String: Any]] {
                if a.first?["caption"] != nil { return .cocoCaptions }
                if a.first?["question_id"] != nil { return .vqa }
            }
            if o["questions"] != nil {
                throw EvaluationError(
                    name,
                    "a VQA questions file: pass the annotations as the data and this file as the questions")
            }
            throw EvaluationError(name, "a JSON object without VQA or COCO caption \"annotations\"")
        case "jsonl":
            guard let (first, loc) = try JSONFile.lines(url).first else {
                throw EvaluationError(name, "empty file")
            }
            guard let o = first as? [String: Any] else { throw EvaluationError(loc, "not a JSON object") }
            if o["conversations"] != nil { return .llava }
            if o["captions"] != nil || o["caption"] != nil { return .captionJSONL }
            if o["answer"] != nil || o["answers"] != nil { return .qaJSONL }
            throw EvaluationError(
                loc,
                "cannot tell the format from the keys \(o.keys.sorted()); pass one of \(allCases.map(\.rawValue))"
            )
        default:
            throw EvaluationError(
                name, "cannot tell the format from the extension; pass one of \(allCases.map(\.rawValue))")
        }
    }
}

/// References of one image's captions.
public struct CaptionReference: Equatable, Sendable {
    public var id: String
    public var references: [String]
    public init(id: String, references: [String]) {
        self.id = id
        self.references = references
    }
}

/// Evaluation data: questions to answer or images to caption.
public enum EvalData: Equatable, Sendable {
    case questions([QuestionRecord])
    case captions([CaptionReference])

    /// Reads evaluation data.
    /// - Parameters:
    ///   - format: nil infers it (`EvalDataFormat.infer`).
    ///   - questions: the VQA questions file (only with `.vqa`): restricts scoring to its questions and
    ///     adds their text.
    /// - Throws: `EvaluationError` naming the file and line or element of the first bad record.
    public static func load(_ url: URL, format: EvalDataFormat? = nil, questions: URL? = nil) throws
        -> EvalData
    {
        let format = try format ?? EvalDataFormat.infer(url)
        if questions != nil, format != .vqa {
            throw EvaluationError(url.lastPathComponent, "a questions file goes only with VQA annotations")
        }
        switch format {
        case .vqa: return .questions(try vqa(url, questions: questions))
        case .llava: return .questions(try llava(url))
        case .qaJSONL: return .questions(try qaJSONL(url))
        case .cocoCaptions: return .captions(try cocoCaptions(url))
        case .captionJSONL: return .captions(try captionJSONL(url))
        }
    }

    static func vqa(_ url: URL, questions: URL?) throws -> [QuestionRecord] {
        let name = url.lastPathComponent
        guard let root = try JSONFile.object(url) as? [String: Any], let anns = root["annotations"] as? [Any]
        else {
            throw EvaluationError(name, "needs an \"annotations\" list")
        }
        var records: [QuestionRecord] = []
        var seen = Set<String>()
        for (i, a) in anns.enumerated() {
            let loc = "\(name)[\(i)]"
            guard let o = a as? [String: Any], let id = JSONFile.id(o["question_id"]) else {
                throw EvaluationError(loc, "needs a \"question_id\"")
            }
            guard seen.insert(id).inserted else { throw EvaluationError(loc, "duplicate question_id \(id)") }
            let answers = try JSONFile.answers(o["answers"], loc: loc)
            guard let answer = (o["multiple_choice_answer"] as? String) ?? JSONFile.mostCommon(answers) else {
                throw EvaluationError(loc, "needs \"multiple_choice_answer\" or \"answers\"")
            }
            records.append(
                QuestionRecord(
                    id: id, type: (o["question_type"] as? String) ?? "all",
                    answerType: o["answer_type"] as? String,
                    answer: answer, humanAnswers: answers.count > 1 ? answers : []))
        }
        guard let qURL = questions else { return records }
        let qName = qURL.lastPathComponent
        guard let qRoot = try JSONFile.object(qURL) as? [String: Any], let qs = qRoot["questions"] as? [Any]
        else {
            throw EvaluationError(qName, "needs a \"questions\" list")
        }
        let byID = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) })
        var out: [QuestionRecord] = []
        for (i, q) in qs.enumerated() {
            let loc = "\(qName)[\(i)]"
            guard let o = q as? [String: Any], let id = JSONFile.id(o["question_id"]) else {
                throw EvaluationError(loc, "needs a \"question_id\"")
            }
            guard var r = byID[id] else {
                throw EvaluationError(loc, "question \(id) has no annotation in \(name)")
            }
            r.question = o["question"] as? String
            out.append(r)
        }
        return out
    }

    static func llava(_ url: URL) throws -> [QuestionRecord] {
        let name = url.lastPathComponent
        let items: [(Any, String)]
        if url.pathExtension.lowercased() == "jsonl" {
            items = try JSONFile.lines(url)
        } else {
            guard let arr = try JSONFile.object(url) as? [Any] else {
                throw EvaluationError(name, "not a JSON array of conversations")
            }
            items = arr.enumerated().map { ($1, "\(name)[\($0)]") }
        }
        var records: [QuestionRecord] = []
        var seen = Set<String>()
        for (item, loc) in items {
            guard let o = item as? [String: Any], let id = JSONFile.id(o["id"]) else {
                throw EvaluationError(loc, "needs an \"id\"")
            }
            guard let turns = o["conversations"] as? [[String: Any]] else {
                throw EvaluationError(loc, "needs a \"conversations\" list")
            }
            var k = 0
            var i = 0
            while i < turns.count {
                guard let from = turns[i]["from"] as? String, let value = turns[i]["value"] as? String else {
                    throw EvaluationError(loc, "turn \(i) needs \"from\" and \"value\"")
                }
                guard from == "human" || from == "user" else {
                    throw EvaluationError(loc, "turn \(i) is from \"\(from)\" where a question was expected")
                }
                guard i + 1 < turns.count, let to = turns[i + 1]["from"] as? String,
                    to == "gpt" || to == "assistant",
                    let answer = turns[i + 1]["value"] as? String
                else {
                    throw EvaluationError(
                        loc, "turn \(i) (a question) is not followed by an assistant answer")
                }
                let q = turns[i]
                let a = turns[i + 1]
                let type = (a["type"] as? String) ?? (q["type"] as? String) ?? (o["type"] as? String) ?? "all"
                let tags =
                    (a["tags"] as? [String]) ?? (q["tags"] as? [String]) ?? (o["tags"] as? [String]) ?? []
                let qid = "\(id)#\(k)"
                guard seen.insert(qid).inserted else {
                    throw EvaluationError(loc, "duplicate question id \(qid)")
                }
                let text = value.replacingOccurrences(of: "<image>", with: "").trimmingWhitespace()
                records.append(
                    QuestionRecord(id: qid, type: type, answer: answer, tags: tags, question: text))
                k += 1
                i += 2
            }
        }
        return records
    }

    static func qaJSONL(_ url: URL) throws -> [QuestionRecord] {
        var records: [QuestionRecord] = []
        var seen = Set<String>()
        for (obj, loc) in try JSONFile.lines(url) {
            guard let o = obj as? [String: Any] else { throw EvaluationError(loc, "not a JSON object") }
            guard let id = JSONFile.id(o["id"]) else { throw EvaluationError(loc, "needs an \"id\"") }
            guard seen.insert(id).inserted else { throw EvaluationError(loc, "duplicate id \(id)") }
            let answers = try JSONFile.answers(o["answers"], loc: loc)
            guard let answer = (o["answer"] as? String) ?? JSONFile.mostCommon(answers) else {
                throw EvaluationError(loc, "needs a string \"answer\" or a list \"answers\"")
            }
            if o["tags"] != nil, !(o["tags"] is [String]) {
                throw EvaluationError(loc, "\"tags\" must be a list of strings")
            }
            records.append(
                QuestionRecord(
                    id: id, type: (o["type"] as? String) ?? "all", answerType: o["answer_type"] as? String,
                    answer: answer, humanAnswers: answers.count > 1 ? answers : [],
                    tags: (o["tags"] as? [String]) ?? [],
                    question: o["question"] as? String))
        }
        return records
    }

    static func cocoCaptions(_ url: URL) throws -> [CaptionReference] {
        let name = url.lastPathComponent
        guard let root = try JSONFile.object(url) as? [String: Any], let anns = root["annotations"] as? [Any]
        else {
            throw EvaluationError(name, "needs an \"annotations\" list")
        }
        var order: [String] = []
        var refs: [String: [String]] = [:]
        for (i, a) in anns.enumerated() {
            guard let o = a as? [String: Any], let id = JSONFile.id(o["image_id"]),
                let c = o["caption"] as? String
            else {
                throw EvaluationError("\(name)[\(i)]", "needs \"image_id\" and a string \"caption\"")
            }
            if refs[id] == nil { order.append(id) }
            refs[id, default: []].append(c)
        }
        return order.map { CaptionReference(id: $0, references: refs[$0]!) }
    }

    static func captionJSONL(_ url: URL) throws -> [CaptionReference] {
        var out: [CaptionReference] = []
        var seen = Set<String>()
        for (obj, loc) in try JSONFile.lines(url) {
            guard let o = obj as? [String: Any] else { throw EvaluationError(loc, "not a JSON object") }
            guard let id = JSONFile.id(o["id"] ?? o["image_id"]) else {
                throw EvaluationError(loc, "needs an \"id\"")
            }
            guard seen.insert(id).inserted else { throw EvaluationError(loc, "duplicate id \(id)") }
            let refs = (o["captions"] as? [String]) ?? (o["caption"] as? String).map { [$0] }
            guard let r = refs, !r.isEmpty else {
                throw EvaluationError(
                    loc, "needs a non-empty list of strings \"captions\" (or a string \"caption\")")
            }
            out.append(CaptionReference(id: id, references: r))
        }
        return out
    }
}

/// Predictions: question id or image id -> the generated answer or caption.
public enum Predictions {
    /// Reads a predictions file: a JSON array (VQA results `{"question_id", "answer"}`, COCO results
    /// `{"image_id", "caption"}`) or JSONL with one object per line. The id is the first of `id`,
    /// `question_id`, `image_id`; the text the first of `answer`, `caption`, `text`.
    /// - Throws: `EvaluationError` naming the file and line or element of a bad or duplicate record.
    public static func load(_ url: URL) throws -> [String: String] {
        let name = url.lastPathComponent
        let items: [(Any, String)]
        if url.pathExtension.lowercased() == "jsonl" {
            items = try JSONFile.lines(url)
        } else {
            guard let arr = try JSONFile.object(url) as? [Any] else {
                throw EvaluationError(name, "predictions must be a JSON array or a .jsonl file")
            }
            items = arr.enumerated().map { ($1, "\(name)[\($0)]") }
        }
        var out: [String: String] = [:]
        for (item, loc) in items {
            guard let o = item as? [String: Any] else { throw EvaluationError(loc, "not a JSON object") }
            guard let id = JSONFile.id(o["id"] ?? o["question_id"] ?? o["image_id"]) else {
                throw EvaluationError(loc, "needs an \"id\", \"question_id\" or \"image_id\"")
            }
            guard let text = (o["answer"] ?? o["caption"] ?? o["text"]) as? String else {
                throw EvaluationError(loc, "needs a string \"answer\", \"caption\" or \"text\"")
            }
            guard out.updateValue(text, forKey: id) == nil else {
                throw EvaluationError(loc, "a second prediction for \(id)")
            }
        }
        return out
    }
}

/// JSON reading with locations.
enum JSONFile {
    static func data(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw EvaluationError(url.path, "cannot be read (\(error.localizedDescription))")
        }
    }

    static func object(_ url: URL) throws -> Any {
        let d = try data(url)
        do { return try JSONSerialization.jsonObject(with: d) } catch {
            throw EvaluationError(url.lastPathComponent, "malformed JSON")
        }
    }

    /// Every non-blank line parsed, with "file:line".
    static func lines(_ url: URL) throws -> [(Any, String)] {
        let name = url.lastPathComponent
        var out: [(Any, String)] = []
        let d = try data(url)
        for (i, line) in d.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let loc = "\(name):\(i + 1)"
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) else {
                throw EvaluationError(loc, "malformed JSON")
            }
            out.append((o, loc))
        }
        return out
    }

    /// A string or integer id as a string.
    static func id(_ v: Any?) -> String? {
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        return nil
    }

    /// `answers`: a list of strings or of `{"answer": ...}` objects (VQA); empty when absent.
    static func answers(_ v: Any?, loc: String) throws -> [String] {
        guard let v else { return [] }
        guard let list = v as? [Any] else { throw EvaluationError(loc, "\"answers\" must be a list") }
        return try list.map { a in
            if let s = a as? String { return s }
            if let o = a as? [String: Any], let s = o["answer"] as? String { return s }
            throw EvaluationError(loc, "each of \"answers\" must be a string or an object with \"answer\"")
        }
    }

    /// The most common answer after normalisation (the first seen on a tie); nil for none.
    static func mostCommon(_ answers: [String]) -> String? {
        var counts: [String: Int] = [:]
        for a in answers { counts[AnswerNormalizer.normalize(a), default: 0] += 1 }
        var best: String?
        var bestCount = 0
        for a in answers {
            let c = counts[AnswerNormalizer.normalize(a)]!
            if c > bestCount { best = a; bestCount = c }
        }
        return best
    }
}
