import ArgumentParser
import Checkpoint
import Foundation
import TensorFiles

/// Converts between safetensors and Sightline's HDF5 weights file (either way; PyTorch .bin and
/// sharded safetensors are accepted as input too).
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights between safetensors and Sightline HDF5 (.h5), either way.",
        discussion: """
            The output format follows OUT's extension (.safetensors, or .h5/.hdf5). Tensor names and order
            are kept. The model configuration moves with the weights: HDF5 'config' attribute <->
            safetensors metadata 'sightline_config' (or --config FILE).
            """)

    @Argument(help: "Input: .h5, .safetensors (or a sharded directory), or a PyTorch .bin/.pt.")
    var input: String

    @Argument(help: "Output: .safetensors or .h5/.hdf5.")
    var output: String

    @Option(help: "Stored element type of the output: float32, float16 or bfloat16.")
    var dtype: WeightDType = .float32

    @Option(help: "A JSON file with the model configuration to store (default: the input's).")
    var config: String?

    func run() throws {
        // Writing onto the input would replace it (lossily for float16/bfloat16) with no way back.
        if sameFile(input, output)
            || (isDirectoryPath(input) && FileManager.default.fileExists(atPath: output)
                && sameFile(input, (output as NSString).deletingLastPathComponent))
        {
            throw ValidationError("output \(output) is the input \(input); write to another file")
        }
        let source = try openTensorFileGuarded(input)
        var configText: String?
        if let config {
            configText = try String(contentsOfFile: config, encoding: .utf8)
        } else if let h5 = source as? HDF5WeightsFile {
            configText = h5.config
        } else {
            configText = source.metadata["sightline_config"]
        }
        let tensors = try source.readAll()
        let ext = (output as NSString).pathExtension.lowercased()
        switch ext {
        case "safetensors":
            var meta = ["format": "pt", "sightline_version": CheckpointFormat.sightlineVersion]
            if let configText { meta["sightline_config"] = configText }
            try SafetensorsFile.write(tensors, to: output, dtype: dtype, metadata: meta)
        case "h5", "hdf5":
            try WeightsFile.write(
                tensors, to: output, dtype: dtype, config: configText ?? "{}",
                attributes: ["source_file": input])
        default:
            throw ValidationError("output must end in .safetensors, .h5 or .hdf5 (got '\(output)')")
        }
        print(
            "wrote \(output): \(tensors.count) tensors, \(grouped(tensors.parameterCount)) parameters as \(dtype.rawValue)"
        )
    }
}
