// swift-tools-version:6.1
// Bridges: vision-language connectors (Chain-of-Sight, C-Abstractor, pooling, MLP).
import PackageDescription

let package = Package(
    name: "Bridges",
    products: [.library(name: "Bridges", targets: ["Bridges"])],
    dependencies: [.package(path: "../Tensor"), .package(path: "../TensorFiles")],
    targets: [
        .target(
            name: "Bridges",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
                // tensor files and the weight loader (no HDF5).
                .product(name: "TensorFiles", package: "TensorFiles"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
