import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing
import Vision

@Suite struct PretrainedTests {
    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vision-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func fromPretrainedLoadsAnHFDirectory() throws {
        let (model, report) = try CLIPVisionModel.fromPretrained(directory: VisionFixtures.clipDirectory)
        #expect(report.isClean && report.loaded.count == model.stateDict().count, "\(report)")
        #expect(model.config.hiddenSize == 32 && model.layerCount == 3 && model.config.gridSize == 8)
        let ref = try VisionFixtures.safetensors("clip_tiny_reference.safetensors")
        let out = try model(try ref.readTensor("native.pixel_values"))
        #expect(relError(out.pooled!, try ref.readTensor("native.pooler_output")) <= 1e-4)
        // Errors name the directory.
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            _ = try CLIPVisionModel.fromPretrained(directory: dir)
            Issue.record("an empty directory loaded")
        } catch let e as VisionError {
            #expect(e.source == dir && e.message.contains("config.json"))
        }
        try FileManager.default.copyItem(
            atPath: VisionFixtures.clipDirectory + "/config.json", toPath: dir + "/config.json")
        #expect(throws: VisionError.self) { try CLIPVisionModel.fromPretrained(directory: dir) }
    }

    @Test func exportedFilesHaveHFNamesShapesAndValues() throws {
        let fixture = try loadFixtureCase("clip_tiny", group: "vision")
        guard case .object(let saved) = try fixture.param("saved_keys") else {
            throw FixtureError("saved_keys")
        }
        let model = try CLIPVisionModel.fromPretrained(directory: VisionFixtures.clipDirectory).model
        let original = try SafetensorsFile(path: VisionFixtures.clipDirectory + "/model.safetensors")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for prefixed in [false, true] {
            let out = dir + (prefixed ? "/prefixed" : "/bare")
            try model.savePretrained(directory: out, prefixed: prefixed)
            let file = try SafetensorsFile(path: out + "/model.safetensors")
            let prefix = prefixed ? "vision_model." : ""
            #expect(Set(file.tensorInfos.map(\.name)) == Set(saved.keys.map { prefix + $0 }))
            for info in file.tensorInfos {
                let bare = String(info.name.dropFirst(prefix.count))
                guard case .array(let dims)? = saved[bare] else { continue }
                #expect(info.shape == dims.compactMap(\.intValue), "\(info.name)")
                #expect(info.dtype == .float32)
                #expect(
                    try file.readTensor(info.name).scalars == original.readTensor(bare).scalars,
                    "\(info.name)")
            }
            #expect(file.metadata["format"] == "pt")
            let config = try CLIPVisionConfig.load(contentsOf: out + "/config.json")
            #expect(config == model.config)
            // And it loads back.
            let again = try CLIPVisionModel.fromPretrained(directory: out).model
            #expect(again.stateDict().map(\.0) == model.stateDict().map(\.0))
        }
    }

    /// The exported directory (both key spellings) loads in HF transformers' `CLIPVisionModel` with no
    /// missing or unexpected keys and reproduces the reference outputs.
    @Test(Python.requires("torch", "transformers", "safetensors"))
    func transformersLoadsTheExportedDirectory() throws {
        let model = try CLIPVisionModel.fromPretrained(directory: VisionFixtures.clipDirectory).model
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for prefixed in [false, true] {
            let out = dir + (prefixed ? "/prefixed" : "/bare")
            try model.savePretrained(directory: out, prefixed: prefixed)
            let run = try Python.run([visionFixtureScript, "--check-export", out])
            #expect(run.status == 0, "transformers check failed: \(run.output)")
        }
    }
}
