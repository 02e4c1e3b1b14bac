import Foundation
import TensorFiles

extension CLIPVisionModel {
    /// Builds the tower from an HF model directory and loads its weights strictly through
    /// `WeightLoader` under `loadOptions(strict:)`.
    ///
    /// The directory holds `config.json` (a CLIP vision config, or a full CLIP config whose
    /// `vision_config` is used) and `model.safetensors` or a sharded `model.safetensors.index.json`. Keys
    /// may carry HF's `vision_model.` prefix (transformers 4, full CLIP checkpoints) or not (transformers 5
    /// `CLIPVisionModel`); a full CLIP checkpoint's text tower and projections are skipped.
    /// - Returns: the tower and the load report.
    /// - Throws: `VisionError` naming the directory or file for a missing or invalid config or an
    ///   unreadable weights file; `LoadError` naming the weights file and every missing, unexpected or
    ///   mis-shaped tensor.
    public static func fromPretrained(directory: String) throws -> (model: CLIPVisionModel, report: LoadReport) {
        let configPath = directory + "/config.json"
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw VisionError(directory, "no config.json in the directory")
        }
        let config = try CLIPVisionConfig.load(contentsOf: configPath)
        let source: TensorSource
        do {
            source = try openSafetensors(directory)
        } catch {
            throw VisionError(directory, "cannot open the weights: \(error)")
        }
        // The tensor table must be able to hold the tower before the tower is built.
        let available = source.tensorInfos.reduce(0) { $0 &+ $1.elementCount }
        if let need = config.checkedParameterCount, need > available {
            throw VisionError(
                configPath,
                "describes a tower of \(need) parameters but the weights in \(source.path) hold \(available) values")
        }
        let model = try CLIPVisionModel(config: config)
        let report = try model.load(from: source)
        return (model, report)
    }

    /// Writes an HF model directory: `config.json` (`model_type` `clip_vision_model`) and
    /// `model.safetensors` (float32, metadata `format: pt`), loadable by transformers'
    /// `CLIPVisionModel.from_pretrained` with no missing or unexpected keys.
    /// - Parameters:
    ///   - prefixed: key names with `vision_model.` (what transformers 4 writes; both 4 and 5 load it) or
    ///     without (what transformers 5 writes).
    /// - Throws: `VisionError` naming the directory when it cannot be written.
    public func savePretrained(directory: String, prefixed: Bool = true) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var object =
                try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as! [String: Any]
            object["model_type"] = "clip_vision_model"
            object["architectures"] = ["CLIPVisionModel"]
            object["attention_dropout"] = 0.0
            let json = try JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try DurableFile.write(json, to: directory + "/config.json")
            let tensors = (prefixed ? stateDict() : visionModel.stateDict()).map { ($0.0, $0.1) }
            try SafetensorsFile.write(
                NamedTensors(tensors), to: directory + "/model.safetensors", metadata: ["format": "pt"])
        } catch let e as VisionError {
            throw e
        } catch {
            throw VisionError(directory, "cannot write the model: \(error)")
        }
    }
}

extension CLIPVisionModel {
    /// `savePretrained(directory:)` under the name every Sightline model uses.
    public func save(to directory: String) throws { try savePretrained(directory: directory) }
}
