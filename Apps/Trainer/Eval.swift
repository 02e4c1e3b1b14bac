import ArgumentParser
import Evaluation
import Foundation
import Training

/// `trainer eval`: scores predictions against evaluation data and writes `eval.json`.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a predictions file against evaluation data; print the table and write eval.json.",
        discussion: """
            Questions are scored by exact match after VQAv2 answer normalisation, per question type and tag, \
            with the chance level (1 / candidate answers of the type) and the majority answer's accuracy \
            beside each; --blind-predictions adds the same model's answers with the image tokens zeroed. \
            Captions are scored with CIDEr-D and BLEU-4. Predictions: a JSON array of {"question_id", \
            "answer"} or {"image_id", "caption"}, or JSONL of {"id", "answer"|"caption"}. \
            With --checkpoint PATH (a stage folder) the model answers the questions of a QA JSONL file itself \
            (greedy, each question on its own) and the blind baseline is run with the image tokens zeroed.
            """)

    @Option(help: "The model's answers or captions.")
    var predictions: String?

    @Option(help: "Instead of --predictions: a stage folder whose model answers the questions of a QA JSONL file.")
    var checkpoint: String?

    @Option(help: "Answers of the same model with the image tokens zeroed (question data only).")
    var blindPredictions: String?

    @OptionGroup var data: EvalDataOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (predictions == nil) != (checkpoint == nil) else {
            throw ValidationError("pass exactly one of --predictions FILE and --checkpoint PATH")
        }
        if checkpoint != nil, blindPredictions != nil {
            throw ValidationError("--blind-predictions goes with --predictions (--checkpoint runs the blind baseline itself)")
        }
    }

    func run() throws {
        if let checkpoint {
            let report = try AnswerEvaluation.run(checkpoint: checkpoint, data: data.dataURL, output: output.url)
            print(report.summary)
            print("wrote \(output.url.appendingPathComponent(EvalReport.fileName).path)")
            return
        }
        guard let predictions else { return }
        let report = try Evaluator.score(
            data: data.dataURL, format: data.format, questions: data.questionsURL,
            predictions: URL(fileURLWithPath: predictions),
            blindPredictions: blindPredictions.map { URL(fileURLWithPath: $0) })
        print(report.summary)
        let file = try report.write(into: output.url)
        print("wrote \(file.path)")
    }
}
