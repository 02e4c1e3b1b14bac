// swift-tools-version:6.1
// Vision: CLIP ViT, positional-embedding interpolation, sub-image decomposition (target Vision, no
// codec), and the image pipeline (target ImagePipeline: PNG/JPEG through libpng and libjpeg-turbo,
// Pillow-exact resizing, CLIP preprocessing).
import PackageDescription

let package = Package(
    name: "Vision",
    products: [
        .library(name: "Vision", targets: ["Vision"]),
        .library(name: "ImagePipeline", targets: ["ImagePipeline"]),
    ],
    dependencies: [.package(path: "../Tensor"), .package(path: "../TensorFiles")],
    targets: [
        .target(
            name: "Vision",
            dependencies: [
                .product(name: "Tensor", package: "Tensor"), .product(name: "Layers", package: "Tensor"),
                // tensor files and the weight loader (no HDF5).
                .product(name: "TensorFiles", package: "TensorFiles"),
            ]),
        // System libraries (Debian libjpeg62-turbo-dev via libjpeg-dev, libpng-dev).
        .systemLibrary(name: "_CLibJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "_CLibPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        // The codecs' setjmp-based error handling, in C.
        .target(name: "_CImageCodecs", dependencies: ["_CLibJPEG", "_CLibPNG"]),
        .target(
            name: "ImagePipeline",
            dependencies: [
                "Vision", "_CImageCodecs", .product(name: "Tensor", package: "Tensor"),
                .product(name: "TensorFiles", package: "TensorFiles"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
