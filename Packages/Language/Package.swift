// swift-tools-version:6.1
// Language: Llama-style decoder, LoRA, tokenizers, generation.
import PackageDescription

let package = Package(
    name: "Language",
    products: [.library(name: "Language", targets: ["Language"])],
    dependencies: [.package(path: "../Tensor")],
    targets: [
        .target(
            name: "Language",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
