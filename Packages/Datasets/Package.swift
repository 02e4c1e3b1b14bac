// swift-tools-version:6.1
// Datasets: sources, the synthetic world, mixing and packing; images through Vision's one image
// pipeline (libjpeg-turbo, libpng, CLIP preprocessing).
import PackageDescription

let package = Package(
    name: "Datasets",
    products: [.library(name: "Datasets", targets: ["Datasets"])],
    dependencies: [.package(path: "../Tensor"), .package(path: "../Vision")],
    targets: [
        .target(
            name: "Datasets",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Vision", package: "Vision"),
                .product(name: "ImagePipeline", package: "Vision"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
