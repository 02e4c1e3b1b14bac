import Checkpoint
import Foundation
import SightlineTestSupport
import Testing
import Vision

/// An HF CLIP directory imported through the real module and exported as a Sightline HDF5 weights
/// file loads into HF transformers' `CLIPVisionModel` with `load_state_dict(strict=True)`, with exactly
/// the names and shapes `save_pretrained` wrote, and reproduces the reference outputs.
@Suite struct WeightsFileExport {
    @Test(Python.requires("torch", "transformers", "h5py", "safetensors")) func exportedWeightsFileLoadsIntoTransformers() throws {
        let directory = VisionFixtures.directory.appendingPathComponent("clip_tiny").path
        let model = try CLIPVisionModel.fromPretrained(directory: directory).model
        let out = FileManager.default.temporaryDirectory.appendingPathComponent(
            "clip-\(UUID().uuidString).h5"
        ).path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try WeightsFile.save(
            module: model, to: out,
            config: String(decoding: try JSONEncoder().encode(model.config), as: UTF8.self))
        // Our side: the file reads back bit-exactly into a fresh module.
        let again = try CLIPVisionModel(config: model.config)
        try WeightsFile.load(into: again, from: out)
        for ((name, a), (_, b)) in zip(model.namedParameters(), again.namedParameters()) {
            #expect(a.data.scalars == b.data.scalars, "\(name)")
        }
        let run = try Python.run([visionFixtureScript, "--check-weights-file", out])
        #expect(run.status == 0, "transformers load of the weights file failed: \(run.output)")
    }
}
