// swift-tools-version:6.1
// Checkpoint: HDF5 weights files and training checkpoints, built on TensorFiles (safetensors, PyTorch).
import PackageDescription

let package = Package(
    name: "Checkpoint",
    products: [
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
    ],
    dependencies: [.package(path: "../Tensor"), .package(path: "../TensorFiles")],
    targets: [
        // libhdf5 as a system library; shim.h wraps the C macros Swift cannot import.
        .systemLibrary(name: "_CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .target(
            name: "Checkpoint",
            dependencies: [
                "_CHDF5", .product(name: "TensorFiles", package: "TensorFiles"),
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
