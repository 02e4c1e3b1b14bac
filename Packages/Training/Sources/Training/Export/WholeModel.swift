import Bridges
import Checkpoint
import Datasets
import Foundation
import Language
import Layers
import Tensor
import TensorFiles
import Vision

// The whole multimodal model as a file: the configuration a whole-model weights file carries, the
// documents a training checkpoint carries so that it can be rebuilt without its run folder, and the
// adapters a model holds, described as PEFT describes them.

/// The configuration of a whole-model weights file (the root `config` attribute, JSON):
///
///     {"model_type": "sightline_multimodal", "vision_config": {HF CLIPVisionConfig fields},
///      "text_config": {HF LlamaConfig fields}, "connector": {ConnectorConfiguration, with "type"},
///      "image_token_id": 32000}
///
/// `sightline_torch.SightlineMultimodalModel.from_file` builds the PyTorch model from it.
public struct WholeModelConfig: Codable, Equatable, Sendable {
    /// The `model_type` of a Sightline whole-model file.
    public static let modelType = "sightline_multimodal"

    public var vision: CLIPVisionConfig
    public var text: LlamaConfig
    public var connector: ConnectorConfiguration
    public var imageTokenId: Int

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", vision = "vision_config", text = "text_config", connector
        case imageTokenId = "image_token_id"
    }

    public init(vision: CLIPVisionConfig, text: LlamaConfig, connector: ConnectorConfiguration, imageTokenId: Int) {
        self.vision = vision
        self.text = text
        self.connector = connector
        self.imageTokenId = imageTokenId
    }

    /// The architecture part of a training `ModelConfig`.
    public init(_ config: ModelConfig) {
        self.init(
            vision: config.vision, text: config.languageModel, connector: config.connector,
            imageTokenId: config.imageTokenId)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let type = try c.decodeIfPresent(String.self, forKey: .modelType), type != Self.modelType {
            throw DecodingError.dataCorruptedError(
                forKey: .modelType, in: c, debugDescription: "model_type \"\(type)\" is not \(Self.modelType)")
        }
        vision = try c.decode(CLIPVisionConfig.self, forKey: .vision)
        text = try c.decode(LlamaConfig.self, forKey: .text)
        connector = try c.decode(ConnectorConfiguration.self, forKey: .connector)
        imageTokenId = try c.decode(Int.self, forKey: .imageTokenId)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.modelType, forKey: .modelType)
        try c.encode(vision, forKey: .vision)
        try c.encode(text, forKey: .text)
        try c.encode(connector, forKey: .connector)
        try c.encode(imageTokenId, forKey: .imageTokenId)
    }

    /// A training `ModelConfig` with this architecture and default training settings.
    public var modelConfig: ModelConfig {
        ModelConfig(vision: vision, connector: connector, languageModel: text, imageTokenId: imageTokenId)
    }

    /// Sorted-key JSON text (what the `config` attribute holds).
    public func jsonText() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// The configuration of a whole-model file, or nil when its `config` attribute is not one (a
    /// single tower, a connector).
    public static func read(_ file: HDF5WeightsFile) -> WholeModelConfig? {
        guard let text = file.config, text.contains("\"vision_config\"") else { return nil }
        return try? JSONDecoder().decode(WholeModelConfig.self, from: Data(text.utf8))
    }
}

/// Names of the documents a training checkpoint of a `MultimodalModel` carries in its trainer group,
/// so that `weights export` rebuilds the model from the checkpoint alone.
public enum ModelDocuments {
    /// The model's `ModelConfig` (JSON).
    public static let modelConfig = "model_config"
    /// The adapters the model carries, as PEFT's `adapter_config.json` (absent without adapters).
    public static let lora = "lora_config"
}

extension MultimodalModel {
    /// The adapters this model carries as one `LoRAConfig` whose `targetModules` are the adapted
    /// modules' full dotted names in this model (`language_model.model.layers.0.self_attn.q_proj`),
    /// `modulesToSave` the parts that train fully beside them (`multi_modal_projector` unless the
    /// connector is frozen; `vision_tower` when the tower trains); nil without adapters.
    /// - Throws: `TrainingError` when adapters of different ranks or scales are attached (one PEFT
    ///   config cannot describe them).
    public func attachedLoRAConfig() throws -> LoRAConfig? {
        let modules = loraModules
        guard let first = modules.first?.1.lora else { return nil }
        for (name, l) in modules where l.lora!.rank != first.rank || l.lora!.scale != first.scale {
            throw TrainingError(
                "\(name) has a rank-\(l.lora!.rank) adapter (scale \(l.lora!.scale)), the first one rank \(first.rank) (scale \(first.scale)): one PEFT config cannot describe both"
            )
        }
        var saved: [String] = []
        if !config.freezeConnector { saved.append("multi_modal_projector") }
        if config.visionTraining != .frozen { saved.append("vision_tower") }
        return LoRAConfig(
            r: first.rank, loraAlpha: Double(first.scale) * Double(first.rank),
            loraDropout: Double(first.dropout?.p ?? 0), targetModules: modules.map(\.0),
            modulesToSave: saved.isEmpty ? nil : saved)
    }

    /// The architecture as a whole-model file describes it.
    public var wholeModelConfig: WholeModelConfig { WholeModelConfig(config) }

    /// Logits at every position of a packed batch.
    /// - Returns: `[B, T, vocab]`
    public func logits(_ batch: PackedBatch) throws -> Tensor {
        try languageModel.logits(hidden: hiddenStates(batch))
    }
}

/// What `weights inspect` says about a whole-model file: its parts, their parameter counts, the
/// connector's type and token count, and the stored types.
public struct WholeModelSummary: Sendable {
    /// One part of the model.
    public struct Part: Sendable {
        /// `vision_tower`, `multi_modal_projector`, `language_model` (or `other`).
        public var name: String
        public var tensors: Int
        public var parameters: Int
        /// Elements per stored type (`float32`, `bfloat16`, ...).
        public var dtypes: [String: Int]
    }

    public var config: WholeModelConfig
    public var parts: [Part]
    /// Visual tokens per image at the tower's image size.
    public var tokensPerImage: Int

    /// Summarises a whole-model file, or returns nil when its `config` is not a whole-model config.
    /// - Throws: `TensorError` when the connector cannot count its tokens on the tower's grid.
    public init?(_ file: HDF5WeightsFile) throws {
        guard let config = WholeModelConfig.read(file) else { return nil }
        self.config = config
        let prefixes = [MultimodalModel.visionPrefix, MultimodalModel.connectorPrefix, MultimodalModel.languagePrefix]
        var parts = prefixes.map { Part(name: String($0.dropLast()), tensors: 0, parameters: 0, dtypes: [:]) }
        var other = Part(name: "other", tensors: 0, parameters: 0, dtypes: [:])
        for info in file.tensorInfos {
            let i = prefixes.firstIndex { info.name.hasPrefix($0) }
            func add(_ p: inout Part) {
                p.tensors += 1
                p.parameters += info.elementCount
                p.dtypes[info.dtype.rawValue, default: 0] += info.elementCount
            }
            if let i { add(&parts[i]) } else { add(&other) }
        }
        if other.tensors > 0 { parts.append(other) }
        self.parts = parts
        tokensPerImage = try config.connector.tokenCount(grid: .square(config.vision.gridSize))
    }

    /// Printable lines.
    public var lines: [String] {
        var out = [
            "whole model: CLIP vision \(config.vision.numHiddenLayers) layers x \(config.vision.hiddenSize) at \(config.vision.imageSize)px (patch \(config.vision.patchSize)), connector \(config.connector.type) (\(tokensPerImage) tokens per image, feature levels \(config.connector.featureLevels)), Llama \(config.text.numHiddenLayers) layers x \(config.text.hiddenSize), vocabulary \(config.text.vocabSize), image token \(config.imageTokenId)"
        ]
        for p in parts {
            let types = p.dtypes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            out.append("  \(p.name): \(p.tensors) tensors, \(p.parameters) parameters (\(types))")
        }
        return out
    }
}
