// Kernels are bounds-checked in debug and run unchecked in release. On x86-64 they are compiled for
// Haswell (AVX2 + FMA, x86 server CPUs since 2013) so that their loops vectorise 8 wide;
// set SIGHTLINE_BASELINE_X86=1 when building for an older CPU.
import Foundation
// swift-tools-version:6.1
// Tensor: n-d Float32 tensors, reverse-mode autodiff, kernels, and the Layers module tree.
import PackageDescription

var releaseKernelFlags = ["-Ounchecked", "-wmo"]
#if arch(x86_64)
    if ProcessInfo.processInfo.environment["SIGHTLINE_BASELINE_X86"] == nil {
        releaseKernelFlags += ["-target-cpu", "haswell"]
    }
#endif
let kernelFlags: [SwiftSetting] = [.unsafeFlags(releaseKernelFlags, .when(configuration: .release))]

let package = Package(
    name: "Tensor",
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Layers", targets: ["Layers"]),
        // The kernels themselves, for backend implementations and kernel tests; `Tensor` re-exports
        // only a curated part of them (Sources/Tensor/Exports.swift).
        .library(name: "TensorKernels", targets: ["TensorKernels"]),
    ],
    targets: [
        // Loads OpenBLAS with dlopen at first use, after choosing the core type from cpuid.
        .target(name: "_CSightlineBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "TensorKernels", dependencies: ["_CSightlineBLAS"],
            swiftSettings: kernelFlags),
        .target(name: "Tensor", dependencies: ["TensorKernels"]),
        .target(name: "Layers", dependencies: ["Tensor"]),
    ],
    swiftLanguageModes: [.v5]
)
