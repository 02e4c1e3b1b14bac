// swift-tools-version:6.1
// TensorFiles: format-free tensor-file types (`TensorSource`, `NamedTensors`, dtypes), the one weight
// loader (`WeightLoader`, `LoadOptions`, `LoadReport`), safetensors (single and sharded) and the PyTorch
// `torch.save` reader. No HDF5: models load through this package; Checkpoint (HDF5) builds on it.
import PackageDescription

let package = Package(
    name: "TensorFiles",
    products: [.library(name: "TensorFiles", targets: ["TensorFiles"])],
    dependencies: [.package(path: "../Tensor")],
    targets: [
        .target(
            name: "TensorFiles",
            dependencies: [.product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor")])
    ],
    swiftLanguageModes: [.v5]
)
