import ArgumentParser
import Evaluation
import Foundation

/// Where the evaluation data is and its format (shared by the evaluating subcommands).
struct EvalDataOptions: ParsableArguments {
    @Option(
        help:
            "Evaluation data: VQA annotations JSON, LLaVA JSON/JSONL, COCO caption JSON, or our QA/caption JSONL."
    )
    var data: String

    @Option(help: "The data's format (default: inferred from the file).")
    var format: EvalDataFormat?

    @Option(help: "VQA questions JSON going with VQA annotations (optional).")
    var questions: String?

    var dataURL: URL { URL(fileURLWithPath: data) }
    var questionsURL: URL? { questions.map { URL(fileURLWithPath: $0) } }
}

/// Where results go.
struct OutputOptions: ParsableArguments {
    @Option(help: "Directory for the results (created if needed).")
    var output: String = "."

    var url: URL { URL(fileURLWithPath: output) }
}

extension EvalDataFormat: @retroactive ExpressibleByArgument {}
