// swift-tools-version:6.1
// Language: Llama-style decoder, LoRA, tokenizers, generation.
import PackageDescription

let package = Package(
    name: "Language",
    products: [.library(name: "Language", targets: ["Language"])],
    dependencies: [.package(path: "../Tensor"), .package(path: "../TensorFiles")],
    targets: [
        .target(
            name: "Language",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
                // tensor files and the weight loader (no HDF5).
                .product(name: "TensorFiles", package: "TensorFiles"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
