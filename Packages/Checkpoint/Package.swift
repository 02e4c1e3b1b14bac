// swift-tools-version:6.1
// Checkpoint: HDF5 weights files and training checkpoints, safetensors and PyTorch state-dict import.
import PackageDescription

let package = Package(
    name: "Checkpoint",
    products: [
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "Safetensors", targets: ["Safetensors"]),
        .library(name: "CHDF5", targets: ["CHDF5"]),
    ],
    dependencies: [.package(path: "../Tensor")],
    targets: [
        // libhdf5 as a system library; shim.h wraps the C macros Swift cannot import.
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        // Safetensors files (and the tensor-file basics the other formats share); no HDF5.
        .target(name: "Safetensors", dependencies: [.product(name: "Tensor", package: "Tensor")]),
        .target(
            name: "Checkpoint",
            dependencies: [
                "CHDF5", "Safetensors", .product(name: "Tensor", package: "Tensor"),
                .product(name: "Layers", package: "Tensor"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
