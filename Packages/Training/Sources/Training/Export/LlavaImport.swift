import Bridges
import Checkpoint
import Foundation
import Language
import Layers
import Tensor
import TensorFiles
import Vision

/// A `TensorSource` whose names are renamed (file name -> model name); tensors renamed to nil are
/// left out. Reads go to the underlying file, so nothing is held in memory.
final class RenamedTensorSource: TensorSource {
    let base: TensorSource
    let path: String
    let tensorInfos: [TensorInfo]
    var metadata: [String: String] { base.metadata }
    private var original: [String: String] = [:]

    init(_ base: TensorSource, rename: (String) throws -> String?) rethrows {
        self.base = base
        path = base.path
        var infos: [TensorInfo] = []
        for info in base.tensorInfos {
            guard let name = try rename(info.name) else { continue }
            original[name] = info.name
            infos.append(TensorInfo(name: name, shape: info.shape, dtype: info.dtype))
        }
        tensorInfos = infos
    }

    func readTensor(_ name: String) throws -> Tensor {
        guard let o = original[name] else { throw TensorFileError(file: path, tensor: name, "no such tensor") }
        return try base.readTensor(o)
    }
}

/// Imports whole multimodal models from HF Llava directories (`LlavaForConditionalGeneration`,
/// transformers 4 or 5 names) and from the Chain-of-Sight authors' LLaVA layout (what
/// `ModelExport.writeCosLlava` writes; LLaVA's `mlp2x_gelu` / `linear` projectors too).
public enum LlavaImport {
    /// Reads `config.json` as a JSON object.
    static func readConfig(_ directory: String) throws -> [String: Any] {
        let path = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw ArchitectureError(
                file: path, FileManager.default.fileExists(atPath: path) ? "not a JSON object" : "no such file")
        }
        return object
    }

    static func decode<T: Decodable>(_ type: T.Type, _ object: Any?, key: String, file: String) throws -> T {
        guard let object else { throw ArchitectureError(file: file, "has no \(key)") }
        do {
            return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: object))
        } catch {
            throw ArchitectureError(file: file, "\(key) is not a valid \(T.self): \(error)")
        }
    }

    static func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue }

    /// Builds the model an HF Llava directory holds and loads its weights strictly.
    ///
    /// Accepted: `vision_feature_select_strategy` `"default"` (the class token dropped, as every
    /// Sightline connector does), an integer `vision_feature_layer`, `projector_hidden_act` `"gelu"`
    /// (LLaVA's `mlp2x_gelu`, a depth-2 projection) or `"linear"` with an identity `linear_2` (a depth-1
    /// projection, as `writeHFLlava` writes it), a Llama `text_config`.
    /// - Throws: `ArchitectureError` naming `config.json` and the key for anything else; `LoadError`
    ///   naming the weights and every missing, unexpected or mis-shaped tensor.
    public static func loadHFLlava(directory: String) throws -> MultimodalModel {
        let file = directory + "/config.json"
        let object = try readConfig(directory)
        let strategy = object["vision_feature_select_strategy"] as? String ?? "default"
        guard strategy == "default" else {
            throw ArchitectureError(
                file: file,
                "vision_feature_select_strategy \"\(strategy)\" keeps the class token; Sightline's connectors read patch tokens only (\"default\")")
        }
        let layerValue = object["vision_feature_layer"] ?? -2
        guard let layer = int(layerValue), !(layerValue is [Any]) else {
            throw ArchitectureError(file: file, "vision_feature_layer \(layerValue) must be one integer (several layers are not supported)")
        }
        let act = object["projector_hidden_act"] as? String ?? "gelu"
        guard act == "gelu" || act == "linear" else {
            throw ArchitectureError(file: file, "projector_hidden_act \"\(act)\" is not gelu or linear")
        }
        if let bias = object["multimodal_projector_bias"] as? Bool, !bias {
            throw ArchitectureError(file: file, "multimodal_projector_bias false: Sightline's projection has biases")
        }
        var textObject = object["text_config"] as? [String: Any] ?? [:]
        if let t = textObject["model_type"] as? String, t != "llama" {
            throw ArchitectureError(file: file, "text_config.model_type \"\(t)\" is not llama")
        }
        if textObject["tie_word_embeddings"] == nil, let tied = object["tie_word_embeddings"] { textObject["tie_word_embeddings"] = tied }
        let text = try decode(LlamaConfig.self, textObject, key: "text_config", file: file)
        let vision = try decode(CLIPVisionConfig.self, object["vision_config"] ?? [String: Any](), key: "vision_config", file: file)
        guard let token = int(object["image_token_index"] ?? object["image_token_id"]) else {
            throw ArchitectureError(file: file, "has no image_token_index / image_token_id")
        }
        let depth = act == "linear" ? 1 : 2
        let connector = ConnectorConfiguration.projection(
            ProjectionConfig(visionDim: vision.hiddenSize, llmDim: text.hiddenSize, depth: depth, featureLevel: layer))
        let model = try MultimodalModel(
            config: ModelConfig(vision: vision, connector: connector, languageModel: text, imageTokenId: token))
        let source = try openSafetensors(directory)
        if depth == 1 { try checkIdentity(source, directory: directory) }
        let renamed = try RenamedTensorSource(source) { name in try hfLlavaName(name, depth: depth) }
        try WeightLoader.load(renamed, into: model)
        model.eval()
        return model
    }

    /// An HF Llava file key (transformers 4 `vision_tower.vision_model.*`, transformers 5
    /// `vision_tower.*` or `model.vision_tower.*`, ...) -> our name; nil for a tensor we drop.
    static func hfLlavaName(_ key: String, depth: Int) throws -> String? {
        var k = key
        if k.hasPrefix("model.") { k = String(k.dropFirst("model.".count)) }
        if k == "lm_head.weight" { return "language_model.lm_head.weight" }
        if k.hasPrefix("vision_tower.") {
            let rest = k.dropFirst("vision_tower.".count)
            return rest.hasPrefix("vision_model.") ? k : "vision_tower.vision_model." + rest
        }
        if k.hasPrefix("multi_modal_projector.") {
            let rest = k.dropFirst("multi_modal_projector.".count)
            if depth == 1 {
                if rest.hasPrefix("linear_2.") { return nil }  // the identity, checked
                if rest.hasPrefix("linear_1.") { return "multi_modal_projector." + rest.dropFirst("linear_1.".count) }
            } else {
                if rest.hasPrefix("linear_1.") { return "multi_modal_projector.0." + rest.dropFirst("linear_1.".count) }
                if rest.hasPrefix("linear_2.") { return "multi_modal_projector.2." + rest.dropFirst("linear_2.".count) }
            }
            return k
        }
        if k.hasPrefix("language_model.") {
            let rest = k.dropFirst("language_model.".count)
            if rest.hasPrefix("model.") || rest.hasPrefix("lm_head.") { return k }
            return "language_model.model." + rest
        }
        return key
    }

    static func checkIdentity(_ source: TensorSource, directory: String) throws {
        let w = source.tensorNames.first { $0.hasSuffix("multi_modal_projector.linear_2.weight") }
        let b = source.tensorNames.first { $0.hasSuffix("multi_modal_projector.linear_2.bias") }
        guard let w, let b else {
            throw ArchitectureError(file: directory + "/config.json", "projector_hidden_act linear but no multi_modal_projector.linear_2 in \(source.path)")
        }
        let weight = try source.readTensor(w), bias = try source.readTensor(b)
        let n = weight.shape.first ?? 0
        let isIdentity = weight.shape == [n, n] && weight.scalars.enumerated().allSatisfy { i, v in v == (i / n == i % n ? 1 : 0) }
        guard isIdentity, bias.scalars.allSatisfy({ $0 == 0 }) else {
            throw ArchitectureError(
                file: directory + "/config.json",
                "projector_hidden_act linear: Sightline imports it as one linear layer, which needs \(w) to be the identity and \(b) zero")
        }
    }

    /// Builds the model of a Chain-of-Sight authors' LLaVA directory (or a LLaVA one with an
    /// `mlp2x_gelu` / `linear` projector) and loads it strictly: `model.*` and `lm_head.weight` are the
    /// decoder, `model.mm_projector.*` the connector, `model.vision_tower.vision_tower.*` the tower.
    /// The connector's configuration is `sightline_connector` when present, else read off the names
    /// (`ChainOfSightProjectorFile.configuration`, head width 64); the tower's is `vision_config`.
    /// - Throws: `ArchitectureError` naming `config.json` and the key; `LoadError` for the weights.
    public static func loadCosLlava(directory: String) throws -> MultimodalModel {
        let file = directory + "/config.json"
        let object = try readConfig(directory)
        var textObject = object
        for k in object.keys where k.hasPrefix("mm_") || k.hasPrefix("cos_") || k.hasPrefix("sightline_") || k == "vision_config" {
            textObject[k] = nil
        }
        textObject["model_type"] = "llama"
        let text = try decode(LlamaConfig.self, textObject, key: "the Llama fields", file: file)
        let vision = try decode(CLIPVisionConfig.self, object["vision_config"], key: "vision_config", file: file)
        let source = try openSafetensors(directory)
        let connector: ConnectorConfiguration
        if let c = object["sightline_connector"] {
            connector = try decode(ConnectorConfiguration.self, c, key: "sightline_connector", file: file)
        } else {
            switch object["mm_projector_type"] as? String ?? "" {
            case "linear":
                connector = .projection(ProjectionConfig(visionDim: vision.hiddenSize, llmDim: text.hiddenSize, depth: 1, featureLevel: int(object["mm_vision_select_layer"]) ?? -2))
            case let t where t.hasPrefix("mlp") && t.hasSuffix("x_gelu"):
                let depth = Int(t.dropFirst(3).dropLast(6)) ?? 0
                connector = .projection(ProjectionConfig(visionDim: vision.hiddenSize, llmDim: text.hiddenSize, depth: depth, featureLevel: int(object["mm_vision_select_layer"]) ?? -2))
            default:
                connector = .chainOfSight(
                    try ChainOfSightProjectorFile.configuration(
                        source, grid: .square(int(object["cos_tokens_per_side"]) ?? vision.gridSize)))
            }
        }
        let token = int(object["image_token_index"]) ?? text.vocabSize - 1
        let model = try MultimodalModel(
            config: ModelConfig(vision: vision, connector: connector, languageModel: text, imageTokenId: token))
        let renamed = RenamedTensorSource(source) { name -> String? in
            if name.hasPrefix(ChainOfSightProjectorFile.prefix) {
                return "multi_modal_projector." + name.dropFirst(ChainOfSightProjectorFile.prefix.count)
            }
            if name.hasPrefix("model.vision_tower.vision_tower.") {
                return "vision_tower." + name.dropFirst("model.vision_tower.vision_tower.".count)
            }
            if name.hasPrefix("model.") { return "language_model." + name }
            if name.hasPrefix("lm_head.") { return "language_model." + name }
            return name
        }
        try WeightLoader.load(renamed, into: model)
        model.eval()
        return model
    }

    /// Writes an imported model as a stage folder that `trainer finetune` starts from (`vision/`,
    /// `connector/`, `language/`, as `StageModels.save` writes them) plus the whole model as
    /// `model.h5`.
    public static func writeStageFolder(_ model: MultimodalModel, to directory: String, dtype: WeightDType = .float32)
        throws
    {
        try StageModels.save(model, to: directory)
        try ModelExport.export(model, lora: nil, to: directory + "/model.h5", dtype: dtype)
    }
}
