// swift-tools-version:6.1
// Language: Llama-style decoder, LoRA, tokenizers, generation.
import PackageDescription

let package = Package(
    name: "Language",
    products: [.library(name: "Language", targets: ["Language"])],
    dependencies: [.package(path: "../Tensor"), .package(path: "../Checkpoint")],
    targets: [
        .target(
            name: "Language",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
                // safetensors only (its own target: no HDF5).
                .product(name: "Safetensors", package: "Checkpoint"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
