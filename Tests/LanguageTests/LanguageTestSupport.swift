import Foundation
import Language
import SightlineTestSupport
import Tensor

// Test-only helpers: a minimal float32 safetensors reader/writer (the fixtures' weights and
// gradients), fixture paths, and model loading.

enum Safetensors32 {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Reads every tensor of a safetensors file (F32 only).
    static func read(_ url: URL) throws -> [String: Tensor] {
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw Failure(description: "\(url.path): too short") }
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard
            let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n)))
                as? [String: Any]
        else {
            throw Failure(description: "\(url.path): bad header")
        }
        var out: [String: Tensor] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String, dtype == "F32",
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int]
            else { throw Failure(description: "\(url.path): \(name) is not F32") }
            let bytes = data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
            let floats = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            out[name] = try Tensor(shape: shape, scalars: floats)
        }
        return out
    }

    /// Writes tensors as F32 in the given order.
    static func write(
        _ tensors: [(String, Tensor)], to url: URL, metadata: [String: String] = ["format": "pt"]
    ) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for (name, t) in tensors {
            header[name] = [
                "dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count],
            ]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors { t.withUnsafeBufferPointer { out.append(Data(buffer: $0)) } }
        try out.write(to: url)
    }
}

let languageFixtures = fixtureDirectory("language")

/// Loads a fixture model directory (config.json + model.safetensors).
func loadFixtureModel(_ name: String) throws -> LlamaForCausalLM {
    let dir = languageFixtures.appendingPathComponent(name)
    let config = try LlamaConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
    let tensors = try Safetensors32.read(dir.appendingPathComponent("model.safetensors"))
    let (model, report) = try LlamaForCausalLM.load(config: config, tensors: tensors)
    precondition(report.missing.isEmpty && report.unexpected.isEmpty, "\(report)")
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
