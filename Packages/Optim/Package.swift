// swift-tools-version:6.1
// Optim: AdamW (two decay semantics), SGD, schedules, clipping, z-loss, the MM1 learning-rate law.
import Foundation
import PackageDescription

// The fused update loops run unchecked in release, compiled for Haswell (AVX2 + FMA) on x86-64 like
// Tensor's kernels (SIGHTLINE_BASELINE_X86=1 opts out).
var releaseFlags = ["-Ounchecked"]
#if arch(x86_64)
    if ProcessInfo.processInfo.environment["SIGHTLINE_BASELINE_X86"] == nil {
        releaseFlags += ["-target-cpu", "haswell"]
    }
#endif

let package = Package(
    name: "Optim",
    products: [.library(name: "Optim", targets: ["Optim"])],
    dependencies: [.package(path: "../Tensor")],
    targets: [
        .target(
            name: "Optim",
            dependencies: [.product(name: "Tensor", package: "Tensor")],
            swiftSettings: [.unsafeFlags(releaseFlags, .when(configuration: .release))])
    ],
    swiftLanguageModes: [.v5]
)
