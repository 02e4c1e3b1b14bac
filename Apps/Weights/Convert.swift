import ArgumentParser
import Checkpoint
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
        let configText = try config.map { try String(contentsOfFile: $0, encoding: .utf8) }
        let summary = try WeightsConversion.convert(
            input: input, output: output, dtype: dtype, config: configText,
            probe: TensorFileProbe.currentExecutable)
        print(
            "wrote \(output): \(summary.tensors) tensors, \(grouped(summary.parameters)) parameters as \(dtype.rawValue)"
        )
    }
}
