// swift-tools-version:6.1
// Vision: CLIP ViT, positional-embedding interpolation, sub-image decomposition, image pipeline.
import PackageDescription

let package = Package(
    name: "Vision",
    products: [.library(name: "Vision", targets: ["Vision"])],
    dependencies: [.package(path: "../Tensor")],
    targets: [
        .target(
            name: "Vision",
            dependencies: [.product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor")])
    ],
    swiftLanguageModes: [.v5]
)
