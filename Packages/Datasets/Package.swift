// swift-tools-version:6.1
// Datasets: sources, the synthetic world, mixing and packing.
import PackageDescription

let package = Package(
    name: "Datasets",
    products: [.library(name: "Datasets", targets: ["Datasets"])],
    dependencies: [
        .package(path: "../Tensor"), .package(path: "../Vision"), .package(path: "../Bridges"),
        .package(path: "../Language"),
    ],
    targets: [
        .target(
            name: "Datasets",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Vision", package: "Vision"),
                .product(name: "Bridges", package: "Bridges"),
                .product(name: "Language", package: "Language"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
