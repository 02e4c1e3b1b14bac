// swift-tools-version:6.1
// Training: model assembly, the training loop, evaluation, checkpoint cadence.
import PackageDescription

let package = Package(
    name: "Training",
    products: [
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Collectives", targets: ["Collectives"]),
    ],
    dependencies: [
        .package(path: "../Tensor"), .package(path: "../Vision"), .package(path: "../Bridges"),
        .package(path: "../Language"), .package(path: "../Optim"), .package(path: "../Checkpoint"), .package(path: "../TensorFiles"),
        .package(path: "../Datasets"), .package(path: "../Evaluation"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // Opens Open MPI with dlopen, only in a process started by a launcher (mpirun, srun).
        .target(name: "_CSightlineMPI", linkerSettings: [.linkedLibrary("dl")]),
        // MPI_COMM_WORLD's collectives (broadcast, all-reduce, reduce-scatter, all-gather, barrier, abort).
        .target(name: "Collectives", dependencies: ["_CSightlineMPI"]),
        .target(
            name: "Training",
            dependencies: [
                "Collectives",
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
                .product(name: "Vision", package: "Vision"), .product(name: "Bridges", package: "Bridges"),
                .product(name: "Language", package: "Language"), .product(name: "Optim", package: "Optim"),
                .product(name: "Checkpoint", package: "Checkpoint"),
                .product(name: "TensorFiles", package: "TensorFiles"),
                .product(name: "Datasets", package: "Datasets"),
                .product(name: "Evaluation", package: "Evaluation"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ])
    ],
    swiftLanguageModes: [.v5]
)
