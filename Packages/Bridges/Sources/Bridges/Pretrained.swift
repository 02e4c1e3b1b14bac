import Foundation
import Tensor
import TensorFiles

/// File names of a saved connector directory.
public enum ConnectorFiles {
    /// The `ConnectorConfiguration` as JSON.
    public static let config = "connector_config.json"
    /// The parameters (float32, the connector's documented names).
    public static let weights = "model.safetensors"
    /// The key prefix of a LLaVA `mm_projector.bin` (`model.mm_projector.0.weight`).
    public static let llavaProjectorPrefix = "model.mm_projector."
}

extension Connector {
    /// The load rules of a connector, stated once (every load of a connector uses them): the
    /// connector's documented names (its `stateDict()`), read under `keyPrefix` when the file stores
    /// them inside a larger model (`ConnectorFiles.llavaProjectorPrefix`); keys outside the prefix are
    /// skipped. Connectors have no derived buffers.
    /// - Parameters:
    ///   - keyPrefix: the prefix every connector key carries in the file, or nil.
    ///   - strict: throw on anything missing, unexpected or mis-shaped (default).
    public func loadOptions(keyPrefix: String? = nil, strict: Bool = true) -> LoadOptions {
        LoadOptions(strict: strict, ignored: [], keyPrefix: keyPrefix)
    }

    /// Loads `source` through `WeightLoader` under `loadOptions(keyPrefix:strict:)`.
    /// - Returns: the report.
    /// - Throws: `LoadError` naming the source and every missing, unexpected or mis-shaped tensor
    ///   (nothing is changed then); `TensorFileError` when a tensor cannot be read.
    @discardableResult
    public func load(from source: TensorSource, keyPrefix: String? = nil, strict: Bool = true) throws
        -> LoadReport
    {
        try WeightLoader.load(source, into: self, options: loadOptions(keyPrefix: keyPrefix, strict: strict))
    }

    /// Writes `connector_config.json` and `model.safetensors` (the state dict) into `directory`.
    public func save(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(encoder.encode(configuration), to: directory + "/" + ConnectorFiles.config)
        try SafetensorsFile.write(NamedTensors(stateDict()), to: directory + "/" + ConnectorFiles.weights)
    }
}

/// Builds a connector from a directory written by `Connector.save(to:)` and loads its weights
/// strictly through `WeightLoader`.
/// - Returns: the connector and the load report.
/// - Throws: `TensorError("connectorFromPretrained", ...)` naming `connector_config.json` when it is
///   missing or invalid; `LoadError` naming the weights file and every missing, unexpected or
///   mis-shaped tensor.
public func connectorFromPretrained(directory: String) throws -> (connector: any Connector, report: LoadReport) {
    let configURL = URL(fileURLWithPath: directory + "/" + ConnectorFiles.config)
    let configuration: ConnectorConfiguration
    do {
        configuration = try JSONDecoder().decode(
            ConnectorConfiguration.self, from: Data(contentsOf: configURL))
    } catch {
        throw TensorError("connectorFromPretrained", "\(configURL.path): \(error)")
    }
    return try connectorFromPretrained(
        configuration: configuration, file: directory + "/" + ConnectorFiles.weights)
}

/// Builds a connector from `configuration` and loads its weights from a single file: safetensors,
/// or a PyTorch `torch.save` state dict such as LLaVA's `mm_projector.bin` (which has no
/// configuration of its own, and stores its keys under `ConnectorFiles.llavaProjectorPrefix`).
///
/// ```swift
/// let (projector, report) = try connectorFromPretrained(
///     configuration: .projection(ProjectionConfig(visionDim: 1024, llmDim: 4096, depth: 2)),
///     file: "mm_projector.bin", keyPrefix: ConnectorFiles.llavaProjectorPrefix)
/// ```
/// - Parameters:
///   - keyPrefix: the prefix of the connector's keys in the file (removed), or nil; other keys are
///     skipped and reported as such.
///   - strict: throw on anything missing, unexpected or mis-shaped (default).
/// - Returns: the connector and the load report.
/// - Throws: `TensorFileError` naming the file when it cannot be read; `LoadError` naming it and
///   every missing, unexpected or mis-shaped tensor; `TensorError` for an invalid configuration.
public func connectorFromPretrained(
    configuration: ConnectorConfiguration, file: String, keyPrefix: String? = nil, strict: Bool = true
) throws -> (connector: any Connector, report: LoadReport) {
    let connector = try makeConnector(configuration)
    let report = try connector.load(from: try openTensorSource(file), keyPrefix: keyPrefix, strict: strict)
    return (connector, report)
}
