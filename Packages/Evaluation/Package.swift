// swift-tools-version:6.1
// Evaluation: answer accuracy (VQAv2 normalisation, chance levels, blind baseline), caption metrics
// (CIDEr-D, BLEU-4), held-out perplexity, evaluation inputs and the `eval.json` report. Foundation,
// plus TensorFiles' `DurableFile` for writing the report atomically.
import PackageDescription

let package = Package(
    name: "Evaluation",
    products: [.library(name: "Evaluation", targets: ["Evaluation"])],
    dependencies: [.package(path: "../TensorFiles")],
    targets: [.target(name: "Evaluation", dependencies: [.product(name: "TensorFiles", package: "TensorFiles")])],
    swiftLanguageModes: [.v5]
)
