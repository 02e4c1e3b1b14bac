/// One question to score: its id, type, the reference answer(s), and optional subset tags.
public struct QuestionRecord: Equatable, Sendable {
    /// Unique id that predictions refer to.
    public var id: String
    /// The question type results are grouped by (VQA's `question_type`, our `type`; "all" when absent).
    public var type: String
    /// VQA's `answer_type` ("yes/no", "number", "other"), when the data has it.
    public var answerType: String?
    /// The canonical answer exact match is scored against (VQA's `multiple_choice_answer`).
    public var answer: String
    /// All human answers (VQA's ten), when there are several: then the VQA consensus accuracy is also
    /// reported. Empty otherwise.
    public var humanAnswers: [String]
    /// Subsets the question belongs to (for example "small_object"); each gets its own accuracy.
    public var tags: [String]
    /// The question text, when the input has it (not used for scoring).
    public var question: String?

    public init(
        id: String, type: String = "all", answerType: String? = nil, answer: String,
        humanAnswers: [String] = [],
        tags: [String] = [], question: String? = nil
    ) {
        self.id = id
        self.type = type
        self.answerType = answerType
        self.answer = answer
        self.humanAnswers = humanAnswers
        self.tags = tags
        self.question = question
    }
}

/// Accuracy of one group of questions (all, one type, one tag), with its chance levels beside it.
public struct GroupScore: Codable, Equatable, Sendable {
    /// Questions in the group.
    public var questions: Int
    /// Predictions equal to the canonical answer after normalisation.
    public var correct: Int
    /// `correct / questions`.
    public var accuracy: Double
    /// Expected accuracy of guessing uniformly among the candidate answers of each question's type:
    /// the mean over the group's questions of `1 / K(type)`, where `K(type)` is the number of distinct
    /// normalised canonical answers of that type in the evaluated set.
    public var chance: Double
    /// Accuracy of always answering the most frequent canonical answer of each question's type (the
    /// best answer prior that ignores image and question text beyond the type).
    public var majority: Double
    /// VQA consensus accuracy (`min(1, matching humans / 3)` averaged over the ten leave-one-out
    /// subsets), when the questions have several human answers; nil otherwise.
    public var vqaAccuracy: Double?

    enum CodingKeys: String, CodingKey {
        case questions, correct, accuracy, chance, majority
        case vqaAccuracy = "vqa_accuracy"
    }
}

/// Per-question results and the grouped accuracies of one set of predictions.
public struct AnswerScores: Codable, Equatable, Sendable {
    /// Every question.
    public var overall: GroupScore
    /// By question type (sorted by name in JSON).
    public var perType: [String: GroupScore]
    /// By VQA answer type, when the data has answer types; empty otherwise.
    public var perAnswerType: [String: GroupScore]
    /// By tag (a question with several tags counts in each).
    public var perTag: [String: GroupScore]
    /// Distinct normalised canonical answers per type (the `K` of the chance level).
    public var candidates: [String: Int]

    enum CodingKeys: String, CodingKey {
        case overall, candidates
        case perType = "per_type"
        case perAnswerType = "per_answer_type"
        case perTag = "per_tag"
    }
}

/// Accuracy with and without the image: the blind predictions come from the same model with the image
/// tokens zeroed, and the gain is what the image contributes.
public struct BlindComparison: Codable, Equatable, Sendable {
    /// The blind run's scores, computed exactly like the main run's.
    public var blind: AnswerScores
    /// Main accuracy minus blind accuracy, overall.
    public var gainOverall: Double
    /// Main minus blind, per question type.
    public var gainPerType: [String: Double]
    /// Main minus blind, per tag.
    public var gainPerTag: [String: Double]

    enum CodingKeys: String, CodingKey {
        case blind
        case gainOverall = "gain_overall"
        case gainPerType = "gain_per_type"
        case gainPerTag = "gain_per_tag"
    }

    /// Compares main scores with blind ones computed on the same questions.
    public init(main: AnswerScores, blind: AnswerScores) {
        self.blind = blind
        gainOverall = main.overall.accuracy - blind.overall.accuracy
        gainPerType = [:]
        for (k, v) in main.perType {
            if let b = blind.perType[k] { gainPerType[k] = v.accuracy - b.accuracy }
        }
        gainPerTag = [:]
        for (k, v) in main.perTag { if let b = blind.perTag[k] { gainPerTag[k] = v.accuracy - b.accuracy } }
    }
}

/// Exact-match scoring of answers.
public enum AnswerScoring {
    /// VQA consensus accuracy of one normalised prediction against normalised human answers: for each
    /// of the `n` answers left out in turn, `min(1, matches among the other n-1 / 3)`; the mean of those.
    public static func consensusAccuracy(prediction: String, humanAnswers: [String]) -> Double {
        guard !humanAnswers.isEmpty else { return 0 }
        guard humanAnswers.count > 1 else { return prediction == humanAnswers[0] ? 1 : 0 }
        let matches = humanAnswers.filter { $0 == prediction }.count
        var total = 0.0
        for h in humanAnswers {
            let others = matches - (h == prediction ? 1 : 0)
            total += min(1, Double(others) / 3)
        }
        return total / Double(humanAnswers.count)
    }

    /// Scores predictions (question id -> answer) against questions.
    /// - Throws: `EvaluationError` naming the first missing ids when a question has no prediction, or
    ///   the first unknown ids when a prediction names no question, or when there are no questions.
    public static func score(
        questions: [QuestionRecord], predictions: [String: String], source: String = "predictions"
    )
        throws -> AnswerScores
    {
        guard !questions.isEmpty else { throw EvaluationError(source, "no questions to score") }
        let missing = questions.filter { predictions[$0.id] == nil }.map(\.id)
        if !missing.isEmpty {
            throw EvaluationError(
                source,
                "\(missing.count) of \(questions.count) questions have no prediction (first: \(missing.prefix(5).joined(separator: ", ")))"
            )
        }
        let known = Set(questions.map(\.id))
        let unknown = predictions.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw EvaluationError(
                source,
                "\(unknown.count) predictions name no question in the data (first: \(unknown.prefix(5).joined(separator: ", ")))"
            )
        }

        // Candidate answers and their counts per type.
        let canonical = questions.map { AnswerNormalizer.normalize($0.answer) }
        var counts: [String: [String: Int]] = [:]
        for (q, a) in zip(questions, canonical) { counts[q.type, default: [:]][a, default: 0] += 1 }
        let candidates = counts.mapValues(\.count)
        // The most frequent answer per type (ties broken by the smaller string, for determinism).
        let mostFrequent = counts.mapValues { c in
            c.max { ($0.value, $1.key) < ($1.value, $0.key) }!.key
        }

        struct Row {
            var correct: Bool
            var chance: Double
            var majority: Bool
            var consensus: Double?
        }
        var rows: [Row] = []
        rows.reserveCapacity(questions.count)
        for (q, a) in zip(questions, canonical) {
            let p = AnswerNormalizer.normalize(predictions[q.id]!)
            let consensus =
                q.humanAnswers.count > 1
                ? consensusAccuracy(
                    prediction: p, humanAnswers: q.humanAnswers.map(AnswerNormalizer.normalize))
                : nil
            rows.append(
                Row(
                    correct: p == a, chance: 1 / Double(candidates[q.type]!),
                    majority: mostFrequent[q.type] == a,
                    consensus: consensus))
        }

        func group(_ idx: [Int]) -> GroupScore {
            let n = idx.count
            let correct = idx.filter { rows[$0].correct }.count
            let consensus = idx.compactMap { rows[$0].consensus }
            return GroupScore(
                questions: n, correct: correct, accuracy: Double(correct) / Double(n),
                chance: idx.reduce(0) { $0 + rows[$1].chance } / Double(n),
                majority: Double(idx.filter { rows[$0].majority }.count) / Double(n),
                vqaAccuracy: consensus.count == n ? consensus.reduce(0, +) / Double(n) : nil)
        }
        func grouped(_ key: (QuestionRecord) -> [String]) -> [String: GroupScore] {
            var members: [String: [Int]] = [:]
            for (i, q) in questions.enumerated() { for k in key(q) { members[k, default: []].append(i) } }
            return members.mapValues(group)
        }
        return AnswerScores(
            overall: group(Array(questions.indices)), perType: grouped { [$0.type] },
            perAnswerType: grouped { $0.answerType.map { [$0] } ?? [] }, perTag: grouped(\.tags),
            candidates: candidates)
    }
}
