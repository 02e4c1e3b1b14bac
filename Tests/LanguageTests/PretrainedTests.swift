import Foundation
import Language
import SightlineTestSupport
import Testing

@Suite struct LlamaPretrainedDirectories {
    @Test func fromPretrainedSaveRoundTripIsBitExact() throws {
        let source = fixtureDirectory("language").appendingPathComponent("llama_tiny").path
        let (model, report) = try LlamaForCausalLM.fromPretrained(directory: source)
        #expect(report.isClean && report.loaded.count == model.stateDict().count, "\(report)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("llama-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try model.save(to: out)
        let again = try LlamaForCausalLM.fromPretrained(directory: out).model
        #expect(again.config == model.config)
        let a = model.namedParameters(), b = again.namedParameters()
        #expect(a.map(\.0) == b.map(\.0))
        for ((name, p), (_, q)) in zip(a, b) { #expect(p.data.scalars == q.data.scalars, "\(name)") }
        // A directory without weights is an error that names it.
        let empty = out + "-empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        try FileManager.default.copyItem(atPath: out + "/config.json", toPath: empty + "/config.json")
        #expect(throws: (any Error).self) { try LlamaForCausalLM.fromPretrained(directory: empty) }
    }
}
