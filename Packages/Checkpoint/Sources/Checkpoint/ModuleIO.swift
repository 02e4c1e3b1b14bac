import Layers
import Tensor
import TensorFiles

extension Module {
    /// The tensors a weights file must provide for this module: every parameter and persistent buffer
    /// (what `stateDict()` holds), with its shape.
    public var expectedTensors: [ExpectedTensor] {
        stateDict().map { ExpectedTensor($0.0, shape: $0.1.shape) }
    }
}

extension WeightLoader {
    /// Loads `source` into `module`'s parameters and persistent buffers, matching names as
    /// `options` says.
    /// - Returns: the report (in a non-strict load, what was missing or unexpected).
    /// - Throws: `LoadError` listing every problem in a strict load (nothing is changed then);
    ///   `TensorFileError` when a tensor cannot be read.
    @discardableResult
    public static func load(_ source: TensorSource, into module: Module, options: LoadOptions = LoadOptions())
        throws -> LoadReport
    {
        var slots: [String: TensorSlot] = [:]
        for (n, p) in module.namedParameters() { slots[n] = .parameter(p) }
        for (n, b) in module.namedBuffers(persistentOnly: true) { slots[n] = .buffer(b) }
        let (tensors, report) = try load(from: source, expected: module.expectedTensors, options: options)
        for (name, t) in tensors { slots[name]?.set(t) }
        return report
    }
}

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
