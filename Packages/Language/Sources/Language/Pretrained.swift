import Foundation
import Tensor
import TensorFiles

extension LlamaForCausalLM {
    /// Builds the model from an HF directory (`config.json` + `model.safetensors` or a sharded
    /// `model.safetensors.index.json`) and loads it strictly: any missing, unexpected or mis-shaped
    /// tensor is an error naming it.
    public static func fromPretrained(directory: String) throws -> LlamaForCausalLM {
        let (model, _) = try load(directory: URL(fileURLWithPath: directory)) { url in
            var out: [String: Tensor] = [:]
            for (name, t) in try SafetensorsFile(path: url.path).readAll() { out[name] = t }
            return out
        }
        return model
    }

    /// Writes an HF directory that `LlamaForCausalLM.from_pretrained` loads: `config.json` and
    /// `model.safetensors` (float32, HF names, LoRA adapters merged in).
    public func save(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let json = try JSONEncoder().encode(config)
        try json.write(to: URL(fileURLWithPath: directory + "/config.json"), options: .atomic)
        try SafetensorsFile.write(
            NamedTensors(try huggingFaceStateDict()), to: directory + "/model.safetensors",
            metadata: ["format": "pt"])
    }
}
