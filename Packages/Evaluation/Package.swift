// swift-tools-version:6.1
// Evaluation: answer accuracy (VQAv2 normalisation, chance levels, blind baseline), caption metrics
// (CIDEr-D, BLEU-4), held-out perplexity, evaluation inputs and the `eval.json` report. Foundation only.
import PackageDescription

let package = Package(
    name: "Evaluation",
    products: [.library(name: "Evaluation", targets: ["Evaluation"])],
    targets: [.target(name: "Evaluation")],
    swiftLanguageModes: [.v5]
)
