import Layers
import Tensor
import TensorFiles

extension WeightsFile {
    /// Writes `module`'s parameters and persistent buffers (its state dict, in registration order)
    /// as a weights file.
    public static func save(
        module: Module, to path: String, dtype: WeightDType = .float32, config: String = "{}",
        attributes: [String: String] = [:]
    ) throws {
        try write(
            NamedTensors(module.stateDict()), to: path, dtype: dtype, config: config, attributes: attributes)
    }

    /// Loads any weights file Sightline reads (HDF5, safetensors, PyTorch) into `module`.
    @discardableResult
    public static func load(into module: Module, from path: String, options: LoadOptions = LoadOptions())
        throws -> LoadReport
    {
        try WeightLoader.load(try openTensorFile(path), into: module, options: options)
    }
}
