// swift-tools-version:6.1
// Optim: AdamW (two decay semantics), SGD, schedules, clipping, z-loss, the MM1 learning-rate law.
import PackageDescription

let package = Package(
    name: "Optim",
    products: [.library(name: "Optim", targets: ["Optim"])],
    dependencies: [.package(path: "../Tensor")],
    targets: [
        .target(
            name: "Optim",
            dependencies: [.product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor")],
            // The fused update loops run unchecked in release.
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))])
    ],
    swiftLanguageModes: [.v5]
)
