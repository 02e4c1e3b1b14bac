import Foundation
import Tensor
import TensorFiles

/// File names of a saved connector directory.
public enum ConnectorFiles {
    /// The `ConnectorConfiguration` as JSON.
    public static let config = "connector_config.json"
    /// The parameters (float32, the connector's documented names).
    public static let weights = "model.safetensors"
}

extension Connector {
    /// Writes `connector_config.json` and `model.safetensors` (the state dict) into `directory`.
    public func save(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(configuration).write(
            to: URL(fileURLWithPath: directory + "/" + ConnectorFiles.config), options: .atomic)
        try SafetensorsFile.write(NamedTensors(stateDict()), to: directory + "/" + ConnectorFiles.weights)
    }
}

/// Builds a connector from a directory written by `Connector.save(to:)` and loads its weights
/// strictly.
/// - Throws: `TensorError("connectorFromPretrained", ...)` naming the directory and every missing,
///   unexpected or mis-shaped tensor.
public func connectorFromPretrained(directory: String) throws -> any Connector {
    let op = "connectorFromPretrained"
    let configURL = URL(fileURLWithPath: directory + "/" + ConnectorFiles.config)
    let configuration: ConnectorConfiguration
    do {
        configuration = try JSONDecoder().decode(
            ConnectorConfiguration.self, from: Data(contentsOf: configURL))
    } catch {
        throw TensorError(op, "\(configURL.path): \(error)")
    }
    let connector = try makeConnector(configuration)
    let file = try SafetensorsFile(path: directory + "/" + ConnectorFiles.weights)
    let stored = try file.readAll()
    var problems: [String] = []
    var expected = Set<String>()
    for (name, slot) in connector.stateDict().map({ ($0.0, connector.tensorSlot(named: $0.0)!) }) {
        expected.insert(name)
        guard let t = stored[name] else {
            problems.append("missing \(name)")
            continue
        }
        guard t.shape == slot.value.shape else {
            problems.append("\(name): file \(t.shape) vs connector \(slot.value.shape)")
            continue
        }
        slot.set(t)
    }
    for name in stored.names where !expected.contains(name) { problems.append("unexpected \(name)") }
    guard problems.isEmpty else { throw TensorError(op, "\(file.path): " + problems.joined(separator: "; ")) }
    return connector
}
