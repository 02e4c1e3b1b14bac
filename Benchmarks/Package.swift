// swift-tools-version:6.1
// Sightline benchmarks: their own package, never built by the tests. Run in release:
//   swift run -c release --package-path Benchmarks sightline-bench [suite ...]
import PackageDescription

let package = Package(
    name: "SightlineBenchmarks",
    products: [
        .executable(name: "sightline-bench", targets: ["SightlineBench"]),
        .executable(name: "sightline-dp-bench", targets: ["DistributedBench"]),
    ],
    dependencies: [
        .package(path: "../Packages/Tensor"), .package(path: "../Packages/Optim"),
        .package(path: "../Packages/Bridges"), .package(path: "../Packages/Language"),
        .package(path: "../Packages/Datasets"), .package(path: "../Packages/Training"),
        .package(path: "../Packages/Vision"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // Counts malloc/calloc/realloc calls of the whole process (interposes the libc allocator).
        .target(name: "_CMallocCounter"),
        .executableTarget(
            name: "SightlineBench",
            dependencies: [
                "_CMallocCounter", .product(name: "Tensor", package: "Tensor"),
                .product(name: "Layers", package: "Tensor"), .product(name: "Optim", package: "Optim"),
                .product(name: "Bridges", package: "Bridges"),
                .product(name: "Language", package: "Language"),
                .product(name: "Datasets", package: "Datasets"),
                .product(name: "Training", package: "Training"), .product(name: "Vision", package: "Vision"),
                .product(name: "Yams", package: "Yams"),
            ]),
        // Data parallelism over Open MPI: all-reduce bandwidth, step-time overhead (run under mpirun).
        .executableTarget(
            name: "DistributedBench",
            dependencies: [
                .product(name: "Training", package: "Training"), .product(name: "Collectives", package: "Training"),
                .product(name: "Tensor", package: "Tensor"), .product(name: "Datasets", package: "Datasets"),
                .product(name: "Language", package: "Language"), .product(name: "Bridges", package: "Bridges"),
                .product(name: "Vision", package: "Vision"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
