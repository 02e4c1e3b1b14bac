import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Vision

/// Paths and readers for Tests/Fixtures/vision (written by scripts/make_vision_fixtures.py).
enum VisionFixtures {
    static var directory: URL { fixtureDirectory("vision") }
    static var clipDirectory: String { directory.appendingPathComponent("clip_tiny").path }

    static func safetensors(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile(path: directory.appendingPathComponent(name).path)
    }

    /// The fixture tower, loaded from its HF `config.json` and `model.safetensors`.
    static func clipModel() throws -> CLIPVisionModel {
        let config = try CLIPVisionConfig.load(contentsOf: clipDirectory + "/config.json")
        let model = try CLIPVisionModel(config: config)
        try model.load(from: try SafetensorsFile(path: clipDirectory + "/model.safetensors"))
        return model
    }
}

/// max|a - b| / max|b| over two tensors of equal shape.
func relError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "shapes differ: \(a.shape) vs \(b.shape)")
    return relativeError(a.scalars, b.scalars)
}

/// scripts/make_vision_fixtures.py.
var visionFixtureScript: String {
    VisionFixtures.directory.deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/make_vision_fixtures.py").path
}
