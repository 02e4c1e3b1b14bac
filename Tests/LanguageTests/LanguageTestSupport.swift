import Foundation
import Language
import SightlineTestSupport
import Tensor
import TensorFiles

// Test-only helpers: the fixtures' weights and gradients through the package's safetensors reader
// and writer, fixture paths, and model loading.

/// Float32 safetensors files as dictionaries (TensorFiles' reader and writer underneath).
enum Safetensors32 {
    /// Every tensor of a safetensors file, by name.
    static func read(_ url: URL) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, t) in try SafetensorsFile(path: url.path).readAll() { out[name] = t }
        return out
    }

    /// Writes tensors as F32 in the given order.
    static func write(
        _ tensors: [(String, Tensor)], to url: URL, metadata: [String: String] = ["format": "pt"]
    ) throws {
        try SafetensorsFile.write(NamedTensors(tensors), to: url.path, metadata: metadata)
    }
}

let languageFixtures = fixtureDirectory("language")

/// Loads a fixture model directory (config.json + model.safetensors).
func loadFixtureModel(_ name: String) throws -> LlamaForCausalLM {
    let dir = languageFixtures.appendingPathComponent(name)
    let config = try LlamaConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
    let weights = try SafetensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
    let (model, _) = try LlamaForCausalLM.load(config: config, from: weights)
    model.eval()
    return model
}

/// max|a - b| / max|b| over whole tensors.
func relErr(_ a: Tensor, _ b: Tensor) -> Double { relativeError(a.scalars, b.scalars) }

/// An empty directory under the temporary directory, named by `tag` and the process id.
func freshTemporaryDirectory(_ tag: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-\(tag)-\(getpid())")
    try? FileManager.default.removeItem(at: dir)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
