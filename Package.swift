// swift-tools-version:6.1
// Sightline: the monorepo root. Every package under Packages/ is also a standalone SwiftPM package;
// this manifest composes them, defines the apps, and holds one test target per package so that one
// `swift test` here builds and runs every test.
import PackageDescription

let packages = [
    "Tensor", "TensorFiles", "Vision", "Bridges", "Language", "Optim", "Checkpoint", "Datasets", "Training",
    "Evaluation",
]

func lib(_ name: String, _ package: String? = nil) -> Target.Dependency {
    .product(name: name, package: package ?? name)
}

let package = Package(
    name: "Sightline",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "trainer", targets: ["Trainer"]),
        .executable(name: "weights", targets: ["Weights"]),
    ],
    dependencies: packages.map { .package(path: "Packages/\($0)") } + [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // MARK: - Apps (thin: parse arguments, call packages)
        .executableTarget(
            name: "Trainer",
            dependencies: [
                lib("Training"), lib("Tensor"), lib("Evaluation"), lib("Datasets"), lib("Language"),
                lib("ImagePipeline", "Vision"), lib("ArgumentParser", "swift-argument-parser"),
                lib("Logging", "swift-log"),
            ],
            path: "Apps/Trainer"),
        .executableTarget(
            name: "Weights",
            dependencies: [
                lib("Checkpoint"), lib("TensorFiles"), lib("Training"), lib("Tensor"),
                lib("ArgumentParser", "swift-argument-parser"),
            ],
            path: "Apps/Weights"),

        // MARK: - Test support and one test target per package
        // The Checkpoint tests' child process (crash safety, corrupted files): built, never shipped.
        .executableTarget(
            name: "CheckpointTestHelper",
            dependencies: [
                lib("Checkpoint"), lib("TensorFiles"), lib("Tensor"),
                lib("ArgumentParser", "swift-argument-parser"),
            ],
            path: "Tests/CheckpointTestHelper"),
        .target(
            name: "SightlineTestSupport", dependencies: [lib("Tensor"), lib("Layers", "Tensor")],
            path: "Tests/TestSupport"),
        .testTarget(
            name: "TensorTests",
            dependencies: [lib("Tensor"), lib("TensorKernels", "Tensor"), "SightlineTestSupport"],
            path: "Tests/TensorTests"),
        .testTarget(
            name: "LayersTests",
            dependencies: [lib("Tensor"), lib("Layers", "Tensor"), "SightlineTestSupport"],
            path: "Tests/LayersTests"),
        .testTarget(
            name: "CheckpointTests",
            dependencies: [
                lib("Checkpoint"), lib("Tensor"), "SightlineTestSupport",
                lib("TensorFiles"), lib("Layers", "Tensor"),
            ],
            path: "Tests/CheckpointTests"),
        .testTarget(
            name: "VisionTests",
            dependencies: [
                lib("Vision"), lib("Checkpoint"), lib("Tensor"), lib("Layers", "Tensor"), "SightlineTestSupport",
                lib("TensorFiles"), lib("ImagePipeline", "Vision"),
            ],
            path: "Tests/VisionTests"),
        .testTarget(
            name: "BridgesTests",
            dependencies: [
                lib("Bridges"), lib("Tensor"), lib("Layers", "Tensor"), lib("TensorFiles"),
                "SightlineTestSupport",
            ],
            path: "Tests/BridgesTests"),
        .testTarget(
            name: "LanguageTests",
            dependencies: [
                lib("Language"), lib("Tensor"), lib("Layers", "Tensor"), lib("TensorFiles"), "SightlineTestSupport",
            ],
            path: "Tests/LanguageTests"),
        .testTarget(
            name: "OptimTests", dependencies: [lib("Optim"), lib("Tensor"), "SightlineTestSupport"],
            path: "Tests/OptimTests"),
        .testTarget(
            name: "DatasetsTests",
            dependencies: [
                lib("Datasets"), lib("Tensor"), lib("Language"), lib("Vision"),
                lib("ImagePipeline", "Vision"), "SightlineTestSupport",
            ],
            path: "Tests/DatasetsTests"),
        .target(
            name: "TrainingTestSupport",
            dependencies: [
                lib("Training"), lib("Datasets"), lib("Language"), lib("Vision"), lib("Bridges"), lib("Optim"),
                lib("Tensor"),
            ],
            path: "Tests/TrainingTestSupport"),
        // A tiny training run as its own process, for the SIGKILL/SIGTERM tests and scripts/kill_resume.sh.
        .executableTarget(
            name: "TrainingProbe", dependencies: [lib("Training"), "TrainingTestSupport"],
            path: "Tests/TrainingProbe"),
        .testTarget(
            name: "TrainingTests",
            dependencies: [
                lib("Training"), lib("Tensor"), lib("Layers", "Tensor"), lib("Optim"), lib("Checkpoint"),
                lib("TensorFiles"), "SightlineTestSupport", "TrainingTestSupport", lib("Datasets"),
                lib("Language"), lib("Vision"), lib("Bridges"), lib("Logging", "swift-log"),
            ],
            path: "Tests/TrainingTests"),
        .testTarget(
            name: "EvaluationTests", dependencies: [lib("Evaluation")], path: "Tests/EvaluationTests"),
        // Runs the built `trainer` executable (found next to the test bundle).
        .testTarget(
            name: "TrainerTests",
            dependencies: [lib("Checkpoint"), lib("Datasets"), lib("Training"), lib("Language"), "SightlineTestSupport"],
            path: "Tests/TrainerTests"),
        // PyTorch interop: our exports against python/sightline_torch (skipped without torch + h5py).
        .testTarget(
            name: "InteropTests",
            dependencies: [
                lib("Bridges"), lib("Checkpoint"), lib("Tensor"), lib("TensorFiles"), lib("Layers", "Tensor"),
                lib("Training"), lib("Datasets"), lib("Language"), lib("Vision"), "SightlineTestSupport",
            ],
            path: "Tests/InteropTests"),
    ],
    swiftLanguageModes: [.v5]
)
