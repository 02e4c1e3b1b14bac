import Bridges
import Foundation
import SightlineTestSupport
import Tensor
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
            let (loaded, report) = try connectorFromPretrained(directory: dir)
            #expect(report.isClean && report.loaded.count == connector.stateDict().count, "\(report)")
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
        } catch let e as LoadError {
            #expect(e.report.file == dir + "/" + ConnectorFiles.weights)
            #expect(e.report.shapeMismatches.map(\.name) == ["weight", "bias"])
            #expect("\(e)".contains("expected [6, 8], file has [5, 8]"), "\(e)")
        }
    }
}

/// A connector from a single file with a key prefix (LLaVA's `mm_projector.bin`), and features with a
/// leading class token.
@Suite struct ConnectorSingleFiles {
    static let projector = ConnectorConfiguration.projection(ProjectionConfig(visionDim: 8, llmDim: 6, depth: 2))

    /// `mm_projector.bin` written by `torch.save` (scripts/make_projector_fixture.py): keys under
    /// `model.mm_projector.`; the loaded projector reproduces torch's output on the patch tokens of
    /// features whose class token is dropped.
    @Test func loadsALLaVAProjectorBinWrittenByTorch() throws {
        let bridges = fixtureDirectory("bridges")
        let (connector, report) = try connectorFromPretrained(
            configuration: Self.projector, file: bridges.appendingPathComponent("mm_projector.bin").path,
            keyPrefix: ConnectorFiles.llavaProjectorPrefix)
        #expect(report.isClean, "\(report)")
        #expect(report.loaded == ["0.weight", "0.bias", "2.weight", "2.bias"])
        #expect(report.renamed.map(\.fileKey).allSatisfy { $0.hasPrefix("model.mm_projector.") })
        let ref = try SafetensorsFile(
            path: bridges.appendingPathComponent("mm_projector_reference.safetensors").path)
        let features = try ref.readTensor("features_with_cls")
        #expect(features.shape == [1, 5, 8])
        let out = try connector(features, grid: Grid(height: 2, width: 2), dropClassToken: true)
        let expected = try ref.readTensor("out")
        #expect(out.shape == expected.shape)
        #expect(relativeError(out.scalars, expected.scalars) <= 1e-5)
        // Without the option, the class token is an error naming both token counts.
        #expect(throws: TensorError.self) { try connector(features, grid: Grid(height: 2, width: 2)) }
        // Without the prefix, nothing matches: every key is unexpected and the file is named.
        do {
            _ = try connectorFromPretrained(
                configuration: Self.projector, file: bridges.appendingPathComponent("mm_projector.bin").path)
            Issue.record("a prefixed file loaded without its prefix")
        } catch let e as LoadError {
            #expect(e.report.file.hasSuffix("mm_projector.bin"))
            #expect(e.report.missing.count == 4 && e.report.unexpected.count == 4)
        }
    }

    @Test func loadsASafetensorsFileWithAPrefixAndSkipsTheRest() throws {
        let connector = try makeConnector(Self.projector, seed: 3)
        var tensors = NamedTensors()
        tensors["model.embed_tokens.weight"] = Tensor.zeros([3, 6])
        for (name, t) in connector.stateDict() { tensors["model.mm_projector." + name] = t }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "projector-\(UUID().uuidString).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try SafetensorsFile.write(tensors, to: file)
        let (loaded, report) = try connectorFromPretrained(
            configuration: Self.projector, file: file, keyPrefix: ConnectorFiles.llavaProjectorPrefix)
        #expect(report.isClean && report.skipped == ["model.embed_tokens.weight"], "\(report)")
        for ((name, p), (_, q)) in zip(connector.namedParameters(), loaded.namedParameters()) {
            #expect(p.data.scalars == q.data.scalars, "\(name)")
        }
    }

    @Test func dropClassTokenChecksTheTokenCount() throws {
        let x = try Tensor(shape: [1, 5, 2], scalars: (0..<10).map(Float.init))
        let level = try FeatureLevel(x, grid: Grid(height: 2, width: 2), dropClassToken: true)
        #expect(level.features.shape == [1, 4, 2])
        #expect(level.features.scalars == (2..<10).map(Float.init))
        let kept = try FeatureLevel(x, grid: Grid(height: 1, width: 5), dropClassToken: false)
        #expect(kept.features.shape == [1, 5, 2])
        do {
            _ = try FeatureLevel(x, grid: Grid(height: 1, width: 5), dropClassToken: true)
            Issue.record("a level without a class token was cut")
        } catch let e as TensorError {
            #expect(e.message.contains("1 + 5") && e.message.contains("[1, 5, 2]"), "\(e)")
        }
    }
}
