import Bridges
import Datasets
import Evaluation
import Foundation
import Language
import Tensor
import Vision

/// Answers the synthetic world's held-out questions with a model and scores them through Evaluation:
/// each image is encoded once, each question asked on its own (`USER: <image>\n{question}\nASSISTANT:`),
/// greedy decoding; the blind baseline asks the same questions with the image tokens zeroed.
public enum AnswerEvaluation {
    /// One held-out question with its tags (`small_object` when the object asked about is small).
    public struct Item: Sendable {
        public var id: String
        public var scene: SyntheticWorld.Scene
        public var question: SyntheticWorld.Question
        public var tags: [String]
    }

    /// The questions of the first `images` held-out instruction samples.
    public static func items(world: SyntheticWorld, images: Int) -> [Item] {
        var out: [Item] = []
        for i in 0..<images {
            let (scene, qs) = world.instruction(i, split: .heldOut)
            for (k, q) in qs.enumerated() {
                let small = scene.objects.contains { o in
                    o.size == .small
                        && (q.question.contains("at the \(o.place)?")
                            || q.question.contains("\(o.colour.rawValue) \(o.shape.rawValue)"))
                }
                out.append(Item(id: "\(i)-\(k)", scene: scene, question: q, tags: small ? ["small_object"] : []))
            }
        }
        return out
    }

    /// The prompt's two text parts around the image: `USER: ` and `\n{question}\nASSISTANT: `.
    static func promptIDs(_ question: String, vocabulary: SyntheticVocabulary) -> (before: [Int], after: [Int]) {
        ([SyntheticVocabulary.bos] + vocabulary.encode("USER: "), vocabulary.encode("\n" + question + "\nASSISTANT: "))
    }

    /// Generates an answer for each question of one image.
    /// - Parameter blind: zero the image tokens.
    /// - Returns: the decoded answers.
    public static func answer(
        model: MultimodalModel, pixels: Tensor, questions: [String], blind: Bool, options: GenerationOptions
    ) throws -> [String] {
        let vocabulary = SyntheticVocabulary()
        return try noGrad {
            var image = try model.imageTokens(pixels).tokens
            let h = model.languageModel.config.hiddenSize
            image = try image.reshaped([image.shape.dropLast().reduce(1, *), h])
            if blind { image = Tensor.zeros(image.shape) }
            let table = model.languageModel.model.embedTokens.weight.data
            let prompts = try questions.map { q -> Tensor in
                let (a, b) = promptIDs(q, vocabulary: vocabulary)
                return try Tensor.concatenate(
                    [embedding(IndexTensor(a), weight: table), image, embedding(IndexTensor(b), weight: table)], axis: 0)
            }
            return try model.languageModel.generate(promptEmbeddings: prompts, options: options).map {
                decode($0, vocabulary: vocabulary)
            }
        }
    }

    /// Words of ids, stopping at `</s>` or `USER:`.
    public static func decode(_ ids: [Int], vocabulary: SyntheticVocabulary) -> String {
        var words: [String] = []
        for id in ids {
            if id == SyntheticVocabulary.eos || id == SyntheticVocabulary.pad { break }
            guard id >= 0 && id < vocabulary.count else { break }
            let w = vocabulary.words[id]
            if w == "USER:" { break }
            words.append(w)
        }
        return words.joined(separator: " ")
    }

    /// Stop tokens of answers: `</s>` and `USER:`.
    public static func stopTokens() -> Set<Int> {
        let v = SyntheticVocabulary()
        return Set([SyntheticVocabulary.eos] + v.encode("USER:"))
    }

    /// Scores a model on `images` held-out images of the world `config` describes; writes `eval.json`
    /// (with the blind comparison) into `output` when given.
    public static func run(
        model: MultimodalModel, config: TrainingConfig, images: Int, output: String? = nil
    ) throws -> EvalReport {
        let s = config.data.synthetic
        let world = try SyntheticWorld(
            seed: UInt64(s.seed), imageSize: s.imageSize, patchSize: s.patchSize, heldOutEvery: s.heldOutEvery)
        let all = items(world: world, images: images)
        model.eval()
        let preprocess = PipelineImages.clip(size: model.visionTower.config.imageSize)
        let options = GenerationOptions.greedy(maxNewTokens: 6, stopTokens: stopTokens())
        var main: [String: String] = [:]
        var blind: [String: String] = [:]
        var k = 0
        while k < all.count {
            var j = k
            while j < all.count && all[j].scene == all[k].scene && all[j].id.split(separator: "-")[0] == all[k].id.split(separator: "-")[0] { j += 1 }
            let group = Array(all[k..<j])
            let pixels = try preprocess(world.render(group[0].scene)).pixels
            let qs = group.map(\.question.question)
            for (item, a) in zip(group, try answer(model: model, pixels: pixels, questions: qs, blind: false, options: options)) {
                main[item.id] = a
            }
            for (item, a) in zip(group, try answer(model: model, pixels: pixels, questions: qs, blind: true, options: options)) {
                blind[item.id] = a
            }
            k = j
        }
        let records = all.map {
            QuestionRecord(
                id: $0.id, type: $0.question.kind.rawValue, answer: $0.question.answer, tags: $0.tags,
                question: $0.question.question)
        }
        var report = EvalReport()
        let scores = try AnswerScoring.score(questions: records, predictions: main, source: "model")
        report.answers = scores
        report.blind = BlindComparison(
            main: scores, blind: try AnswerScoring.score(questions: records, predictions: blind, source: "blind"))
        report.data = "synthetic held-out (\(images) images)"
        if let output { try report.write(into: URL(fileURLWithPath: output)) }
        return report
    }
}

extension AnswerEvaluation {
    /// `trainer eval --checkpoint`: answers the questions of a QA JSONL file (`{"id", "question",
    /// "answer", "type", "tags", "image"}` per line, `image` relative to the file) with a stage folder's
    /// model, each image encoded once and each question asked on its own (greedy), scores them through
    /// Evaluation with the blind baseline (image tokens zeroed), and writes `eval.json` into `output`.
    /// - Throws: `EvaluationError` naming the file and line of a bad record; the model's load errors.
    @discardableResult
    public static func run(checkpoint: String, data: URL, output: URL) throws -> EvalReport {
        guard FileManager.default.fileExists(atPath: checkpoint + "/language") else {
            throw ConfigError(
                keyPath: "checkpoint", source: checkpoint,
                "not a stage folder (expected vision/, connector/ and language/ inside)")
        }
        let text: String
        do { text = try String(contentsOf: data, encoding: .utf8) } catch {
            throw EvaluationError(data.path, "cannot read: \(error.localizedDescription)")
        }
        var records: [QuestionRecord] = []
        var images: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let loc = "\(data.lastPathComponent):\(n + 1)"
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let question = o["question"] as? String, let answer = o["answer"] as? String,
                let image = o["image"] as? String
            else { throw EvaluationError(loc, "needs string \"question\", \"answer\" and \"image\"") }
            let id = (o["id"] as? String) ?? (o["id"] as? Int).map(String.init) ?? "\(n + 1)"
            records.append(
                QuestionRecord(
                    id: id, type: (o["type"] as? String) ?? "all", answer: answer, tags: (o["tags"] as? [String]) ?? [],
                    question: question))
            images.append(image.hasPrefix("/") ? image : data.deletingLastPathComponent().appendingPathComponent(image).path)
        }
        let model = try StageModels.load(directory: checkpoint)
        model.eval()
        let preprocess = PipelineImages.clip(size: model.visionTower.config.imageSize)
        let options = GenerationOptions.greedy(maxNewTokens: 6, stopTokens: stopTokens())
        var main: [String: String] = [:], blind: [String: String] = [:]
        for path in Array(Set(images)).sorted() {
            let idx = images.indices.filter { images[$0] == path }
            let pixels = try preprocess(PipelineImages.decode(.file(URL(fileURLWithPath: path)))).pixels
            let qs = idx.map { records[$0].question ?? "" }
            for (i, a) in zip(idx, try answer(model: model, pixels: pixels, questions: qs, blind: false, options: options)) {
                main[records[i].id] = a
            }
            for (i, a) in zip(idx, try answer(model: model, pixels: pixels, questions: qs, blind: true, options: options)) {
                blind[records[i].id] = a
            }
        }
        var report = EvalReport()
        report.data = data.lastPathComponent
        report.dataFormat = "qa_jsonl"
        let scores = try AnswerScoring.score(questions: records, predictions: main, source: "model")
        report.answers = scores
        report.blind = BlindComparison(
            main: scores, blind: try AnswerScoring.score(questions: records, predictions: blind, source: "blind"))
        try report.write(into: output)
        return report
    }
}
