import Foundation
import TensorFiles

/// Conversion between safetensors and Sightline's HDF5 weights file, either way (PyTorch `.bin`/`.pt`
/// and sharded safetensors are accepted as input too): what `weights convert` runs.
public enum WeightsConversion {
    /// What a conversion wrote.
    public struct Summary: Sendable {
        /// Tensors written.
        public var tensors: Int
        /// Elements over every tensor.
        public var parameters: Int
        /// The stored element type.
        public var dtype: WeightDType
    }

    /// Converts `input` to `output`, whose extension chooses the format (`.safetensors`, or
    /// `.h5`/`.hdf5`). Tensor names and order are kept. The model configuration moves with the
    /// weights: HDF5 `config` attribute <-> safetensors metadata `sightline_config`, or `config` when
    /// given.
    /// - Parameters:
    ///   - config: the configuration JSON to store instead of the input's.
    ///   - probe: an executable that reads an HDF5 file from elsewhere in a child process first
    ///     (`TensorFileProbe.open`); nil opens it in this process.
    /// - Throws: `TensorFileError` naming `output` for an unknown extension or when `output` is the
    ///   input (writing onto it would replace it, lossily for 16-bit types, with no way back), and the
    ///   readers' and writers' errors naming their files.
    @discardableResult
    public static func convert(
        input: String, output: String, dtype: WeightDType = .float32, config: String? = nil,
        probe: String? = nil
    ) throws -> Summary {
        let ext = (output as NSString).pathExtension.lowercased()
        guard ["safetensors", "h5", "hdf5"].contains(ext) else {
            throw TensorFileError(file: output, "output must end in .safetensors, .h5 or .hdf5")
        }
        var isDirectory: ObjCBool = false
        let inputIsDirectory = FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory)
            && isDirectory.boolValue
        if TensorFileProbe.sameFile(input, output)
            || (inputIsDirectory && FileManager.default.fileExists(atPath: output)
                && TensorFileProbe.sameFile(input, (output as NSString).deletingLastPathComponent))
        {
            throw TensorFileError(file: output, "is the input \(input); write to another file")
        }
        let source = try probe.map { try TensorFileProbe.open(input, probe: $0) } ?? openTensorFile(input)
        var configText = config
        if configText == nil {
            if let h5 = source as? HDF5WeightsFile {
                configText = h5.config
            } else {
                configText = source.metadata["sightline_config"]
            }
        }
        let tensors = try source.readAll()
        if ext == "safetensors" {
            var meta = ["format": "pt", "sightline_version": CheckpointFormat.sightlineVersion]
            if let configText { meta["sightline_config"] = configText }
            try SafetensorsFile.write(tensors, to: output, dtype: dtype, metadata: meta)
        } else {
            try WeightsFile.write(
                tensors, to: output, dtype: dtype, config: configText ?? "{}", attributes: ["source_file": input])
        }
        return Summary(tensors: tensors.count, parameters: tensors.parameterCount, dtype: dtype)
    }
}
