// swift-tools-version:6.1
// Datasets: sources, the synthetic world, mixing and packing.
import PackageDescription

let package = Package(
    name: "Datasets",
    products: [
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "DatasetsImages", targets: ["DatasetsImages"]),
    ],
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
            ]),
        // Vision's codecs (libjpeg-turbo, libpng) and CLIP preprocessing as the loader's decoder.
        .target(
            name: "DatasetsImages",
            dependencies: [
                "Datasets", .product(name: "Tensor", package: "Tensor"),
                .product(name: "Vision", package: "Vision"), .product(name: "ImagePipeline", package: "Vision"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
