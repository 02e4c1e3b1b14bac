import Bridges
import Foundation
import SightlineTestSupport
import TensorFiles
import Testing

@Suite struct ConnectorDirectories {
    @Test func saveAndLoadEveryConnectorKind() throws {
        let configs = ConnectorTests.configurations
        for (i, config) in configs.enumerated() {
            let connector = try makeConnector(config, seed: UInt64(10 + i))
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
                "conn-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try connector.save(to: dir)
            let loaded = try connectorFromPretrained(directory: dir)
            #expect(loaded.configuration == config)
            for ((name, p), (_, q)) in zip(connector.namedParameters(), loaded.namedParameters()) {
                #expect(p.data.scalars == q.data.scalars, "\(config): \(name)")
            }
        }
    }

    @Test func wrongWeightsAreNamed() throws {
        let small = try makeConnector(.projection(ProjectionConfig(visionDim: 8, llmDim: 6, depth: 1)))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conn-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try small.save(to: dir)
        // Same config file, weights of a different width.
        let other = try makeConnector(.projection(ProjectionConfig(visionDim: 8, llmDim: 5, depth: 1)))
        try SafetensorsFile.write(NamedTensors(other.stateDict()), to: dir + "/" + ConnectorFiles.weights)
        do {
            _ = try connectorFromPretrained(directory: dir)
            Issue.record("expected a shape error")
        } catch let e as TensorError {
            #expect(
                e.message.contains("weight") && e.message.contains("[5, 8]") && e.message.contains("[6, 8]"),
                "\(e)")
        }
    }
}
