import Bridges
import Checkpoint
import Foundation
import Language
import Layers
import Tensor
import TensorFiles
import Vision

/// How `weights export` lays out a whole model.
public enum ExportLayout: String, CaseIterable, Codable, Sendable {
    /// One Sightline HDF5 weights file: HF Llava checkpoint names (`vision_tower.vision_model.*`,
    /// `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.weight`) and the
    /// `WholeModelConfig` in the root `config` attribute.
    case hdf5
    /// An HF directory (`config.json`, `model.safetensors`, processor and tokenizer files) that
    /// transformers' `LlavaForConditionalGeneration.from_pretrained` and `AutoProcessor` load;
    /// projection connectors only.
    case hfLlava = "hf-llava"
    /// The Chain-of-Sight authors' LLaVA-based naming: `model.*` / `lm_head.weight` (the decoder),
    /// `model.mm_projector.*` (the connector), `model.vision_tower.vision_tower.vision_model.*` (the tower).
    case cosLlava = "cos-llava"
}

/// What an export wrote.
public struct ExportSummary: Sendable {
    /// Files written, the weights first.
    public var files: [String]
    /// Tensors and parameters of the weights written (adapters not included).
    public var tensors: Int
    public var parameters: Int
    /// Whether adapters were merged into the base weights.
    public var mergedLoRA: Bool
    /// The PEFT adapter directory written beside the weights, if any.
    public var adapterDirectory: String?
}

/// Whole-model export: a `MultimodalModel` (usually from a `CheckpointModel`) to the layouts of
/// `ExportLayout`.
public enum ModelExport {
    /// Name renames between our whole-model names and the HF Llava checkpoint's projector names.
    static let llavaProjector = [("multi_modal_projector.0.", "multi_modal_projector.linear_1."), ("multi_modal_projector.2.", "multi_modal_projector.linear_2.")]

    /// Exports a checkpoint's model.
    /// - Parameters:
    ///   - out: a `.h5` file (`hdf5`) or a directory (`hf-llava`, `cos-llava`).
    ///   - mergeLoRA: merge the adapters into the base weights; otherwise (`hdf5` only) the base
    ///     weights go to `out` and the adapters to a PEFT directory beside it (`adapterDirectory(for:)`).
    ///   - tokenizer: written into the directory layouts; nil: the checkpoint's (`source.tokenizer`).
    /// - Throws: `TrainingError` for a layout the model's connector has no form in, or adapters not
    ///   merged for a directory layout; the writers' `TensorFileError`s.
    @discardableResult
    public static func export(
        _ source: CheckpointModel, to out: String, layout: ExportLayout = .hdf5, dtype: WeightDType = .float32,
        mergeLoRA: Bool = false, tokenizer: ModelTokenizer? = nil
    ) throws -> ExportSummary {
        let attributes = ["source_checkpoint": source.path, "global_step": String(source.step)]
        return try export(
            source.model, lora: source.lora, to: out, layout: layout, dtype: dtype, mergeLoRA: mergeLoRA,
            attributes: attributes, tokenizer: tokenizer ?? source.tokenizer)
    }

    /// Exports a model (adapters attached or not; `lora` describes them, see
    /// `MultimodalModel.attachedLoRAConfig()`). `tokenizer` is written into the directory layouts
    /// (`hf-llava`, `cos-llava`; `writeTokenizer`); nil writes none.
    @discardableResult
    public static func export(
        _ model: MultimodalModel, lora: LoRAConfig?, to out: String, layout: ExportLayout = .hdf5,
        dtype: WeightDType = .float32, mergeLoRA: Bool = false, attributes: [String: String] = [:],
        tokenizer: ModelTokenizer? = nil
    ) throws -> ExportSummary {
        let hasAdapters = !model.loraModules.isEmpty
        if hasAdapters && !mergeLoRA && layout != .hdf5 {
            throw TrainingError(
                "--layout \(layout.rawValue) writes a complete model: the checkpoint's \(model.loraModules.count) LoRA adapters must be merged (--merge-lora), or export --layout hdf5 to keep them as a PEFT adapter"
            )
        }
        switch layout {
        case .hdf5:
            let tensors = hasAdapters && !mergeLoRA ? baseStateDict(model) : try model.mergedStateDict()
            var attrs = attributes
            attrs["layout"] = "sightline"
            if hasAdapters { attrs["lora"] = mergeLoRA ? "merged" : "separate" }
            try WeightsFile.write(
                NamedTensors(tensors), to: out, dtype: dtype, config: model.wholeModelConfig.jsonText(),
                attributes: attrs)
            var summary = ExportSummary(
                files: [out], tensors: tensors.count, parameters: tensors.reduce(0) { $0 + $1.1.count },
                mergedLoRA: hasAdapters && mergeLoRA, adapterDirectory: nil)
            if hasAdapters && !mergeLoRA {
                let dir = adapterDirectory(for: out)
                let files = try writePEFTAdapter(
                    model, lora: lora ?? model.attachedLoRAConfig()!, to: dir,
                    baseModel: (out as NSString).lastPathComponent, dtype: dtype)
                summary.files += files
                summary.adapterDirectory = dir
            }
            return summary
        case .hfLlava, .cosLlava:
            var summary = try layout == .hfLlava
                ? writeHFLlava(model, to: out, dtype: dtype) : writeCosLlava(model, to: out, dtype: dtype)
            if let tokenizer { summary.files += try writeTokenizer(tokenizer, for: model, to: out) }
            return summary
        }
    }

    /// The PEFT directory written beside an HDF5 export: `model.h5` -> `model.adapter`.
    public static func adapterDirectory(for weights: String) -> String {
        ((weights as NSString).deletingPathExtension) + ".adapter"
    }

    /// The base weights without the adapters (unmerged: what the model computes with its adapters
    /// removed), in state-dict order.
    public static func baseStateDict(_ model: Module) -> [(String, Tensor)] {
        let adapters = Set(model.loraParameters().map(\.0))
        return model.stateDict().filter { !adapters.contains($0.0) }
    }

    // MARK: PEFT

    /// Writes PEFT adapters: `dir/adapter_model.safetensors` + `adapter_config.json` for the whole
    /// model (names as `sightline_torch.SightlineMultimodalModel` has them, the trained parts in
    /// `modules_to_save`), and, when the decoder carries adapters, `dir/language_model/` for HF
    /// `LlamaForCausalLM` alone (names relative to the decoder; no `modules_to_save`).
    /// - Returns: the files written.
    public static func writePEFTAdapter(
        _ model: MultimodalModel, lora: LoRAConfig, to dir: String, baseModel: String, dtype: WeightDType = .float32
    ) throws -> [String] {
        var whole = lora
        whole.targetModules = model.loraModules.map(\.0)
        whole.targetPattern = nil
        whole.baseModelNameOrPath = baseModel
        // No task type (written as null): PEFT wraps the whole model as a plain `PeftModel`.
        whole.taskType = ""
        var files = try writeAdapter(NamedTensors(model.loraStateDict(whole)), config: whole, to: dir, dtype: dtype)
        let decoder = model.languageModel
        let adapted = decoder.loraModules.map(\.0)
        if !adapted.isEmpty {
            var d = lora
            d.modulesToSave = nil
            d.taskType = "CAUSAL_LM"
            d.baseModelNameOrPath = nil
            // Short suffixes (`q_proj`) when they pick out exactly the adapted modules, else full names.
            let suffixes = Array(Set(adapted.map { String($0.split(separator: ".").last!) })).sorted()
            let linears = decoder.namedModules().filter { $0.1 is Linear }.map(\.0)
            let picked = linears.filter { n in suffixes.contains { n == $0 || n.hasSuffix("." + $0) } }
            d.targetModules = Set(picked) == Set(adapted) ? suffixes : adapted
            d.targetPattern = nil
            files += try writeAdapter(
                NamedTensors(decoder.loraStateDict(d)), config: d, to: dir + "/language_model", dtype: dtype)
        }
        return files
    }

    static func writeAdapter(_ tensors: NamedTensors, config: LoRAConfig, to dir: String, dtype: WeightDType) throws
        -> [String]
    {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let weights = dir + "/adapter_model.safetensors", json = dir + "/adapter_config.json"
        try SafetensorsFile.write(tensors, to: weights, dtype: dtype, metadata: ["format": "pt"])
        var data = try config.jsonData()
        if config.taskType.isEmpty {
            // PEFT's `task_type: null`: a plain `PeftModel` around any module.
            var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            object["task_type"] = NSNull()
            data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        }
        try data.write(to: URL(fileURLWithPath: json), options: .atomic)
        return [weights, json]
    }

    // MARK: HF Llava

    /// The HF Llava `config.json` object of a model with a projection connector.
    static func llavaConfig(_ model: MultimodalModel, projection p: ProjectionConfig) throws -> [String: Any] {
        let tied = model.languageModel.lmHead == nil
        var text = try jsonObject(model.config.languageModel)
        text["model_type"] = "llama"
        text["tie_word_embeddings"] = tied
        var vision = try jsonObject(model.config.vision)
        vision["model_type"] = "clip_vision_model"
        let grid = model.config.vision.gridSize
        return [
            "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
            "image_token_index": model.config.imageTokenId, "image_seq_length": grid * grid,
            "projector_hidden_act": p.depth == 1 ? "linear" : "gelu", "multimodal_projector_bias": true,
            "vision_feature_layer": p.featureLevel, "vision_feature_select_strategy": "default",
            "text_config": text, "vision_config": vision, "tie_word_embeddings": tied, "dtype": "float32",
        ]
    }

    /// Writes an HF Llava directory: `config.json`, `model.safetensors` (llava-hf checkpoint names:
    /// `vision_tower.vision_model.*`, `multi_modal_projector.linear_{1,2}.*`, `language_model.model.*`,
    /// `language_model.lm_head.weight`), `generation_config.json`, `preprocessor_config.json` (CLIP
    /// preprocessing at the tower's size) and `processor_config.json`; `export` adds the tokenizer
    /// files (`writeTokenizer`). A `linear` projector (depth 1)
    /// becomes `linear_1` with `projector_hidden_act: "linear"` and an identity `linear_2` (exact).
    /// - Throws: `TrainingError` for a connector HF Llava has no form of (anything but a projection of
    ///   depth 1 or 2).
    public static func writeHFLlava(_ model: MultimodalModel, to dir: String, dtype: WeightDType = .float32) throws
        -> ExportSummary
    {
        guard case .projection(let p) = model.config.connector, p.depth <= 2 else {
            throw TrainingError(
                "--layout hf-llava: HF Llava's projector is linear_1 -> act -> linear_2; the model's connector is \(model.config.connector.type)\(describeDepth(model.config.connector)) (export it with --layout hdf5 and load it with sightline_torch)"
            )
        }
        var tensors: [(String, Tensor)] = []
        for (name, t) in try model.mergedStateDict() {
            var n = name
            if p.depth == 1, name.hasPrefix("multi_modal_projector.") {
                n = "multi_modal_projector.linear_1." + name.dropFirst("multi_modal_projector.".count)
            }
            for (from, to) in llavaProjector where n.hasPrefix(from) { n = to + n.dropFirst(from.count) }
            tensors.append((n, t))
        }
        if p.depth == 1 {
            tensors.append(("multi_modal_projector.linear_2.weight", try identity(p.llmDim)))
            tensors.append(("multi_modal_projector.linear_2.bias", Tensor.zeros([p.llmDim])))
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let weights = dir + "/model.safetensors"
        try SafetensorsFile.write(NamedTensors(tensors), to: weights, dtype: dtype, metadata: ["format": "pt"])
        var config = try llavaConfig(model, projection: p)
        config["dtype"] = dtype.rawValue
        var files = [weights]
        files.append(try writeJSON(config, to: dir + "/config.json"))
        files += try writeProcessorFiles(model, to: dir)
        return ExportSummary(
            files: files, tensors: tensors.count, parameters: tensors.reduce(0) { $0 + $1.1.count },
            mergedLoRA: !model.loraModules.isEmpty, adapterDirectory: nil)
    }

    static func describeDepth(_ c: ConnectorConfiguration) -> String {
        if case .projection(let p) = c { return " of depth \(p.depth)" }
        return ""
    }

    static func identity(_ n: Int) throws -> Tensor {
        var v = [Float](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        return try Tensor(shape: [n, n], scalars: v)
    }

    /// `generation_config.json`, `preprocessor_config.json` (CLIP's resize, center crop, mean and std at
    /// the tower's image size: what Sightline's pipeline does) and `processor_config.json`.
    static func writeProcessorFiles(_ model: MultimodalModel, to dir: String) throws -> [String] {
        let v = model.config.vision, l = model.config.languageModel
        let size = v.imageSize
        let preprocessor: [String: Any] = [
            "image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor",
            "do_resize": true, "size": ["shortest_edge": size], "resample": 3, "do_center_crop": true,
            "crop_size": ["height": size, "width": size], "do_rescale": true, "rescale_factor": 1.0 / 255.0,
            "do_normalize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": true,
        ]
        let processor: [String: Any] = [
            "processor_class": "LlavaProcessor", "patch_size": v.patchSize, "num_additional_image_tokens": 1,
            "vision_feature_select_strategy": "default", "image_token": "<image>",
        ]
        var generation: [String: Any] = ["_from_model_config": true]
        if let b = l.bosTokenId { generation["bos_token_id"] = b }
        if let e = l.eosTokenId { generation["eos_token_id"] = e }
        if let p = l.padTokenId { generation["pad_token_id"] = p }
        return [
            try writeJSON(preprocessor, to: dir + "/preprocessor_config.json"),
            try writeJSON(processor, to: dir + "/processor_config.json"),
            try writeJSON(generation, to: dir + "/generation_config.json"),
        ]
    }

    // MARK: Chain-of-Sight authors' layout

    /// Our whole-model name -> the authors' LLaVA name.
    static func cosName(_ name: String) -> String {
        if name.hasPrefix("language_model.lm_head.") { return String(name.dropFirst("language_model.".count)) }
        if name.hasPrefix("language_model.model.") { return String(name.dropFirst("language_model.".count)) }
        if name.hasPrefix("multi_modal_projector.") {
            return ChainOfSightProjectorFile.prefix + name.dropFirst("multi_modal_projector.".count)
        }
        if name.hasPrefix("vision_tower.") { return "model.vision_tower." + name }
        return name
    }

    /// Writes the Chain-of-Sight authors' LLaVA-based layout: `model.safetensors` with the decoder as
    /// LLaVA's `LlavaLlamaForCausalLM` names it (`model.embed_tokens.weight`, `model.layers.N.*`,
    /// `model.norm.weight`, `lm_head.weight`), the connector under `model.mm_projector.` (the names
    /// `ChainOfSightProjectorFile` reads: `cls_token_w{ws}_q{nq}`, `attn_0_w{ws}_l{L}_q{nq}.*`, ...)
    /// and the tower under `model.vision_tower.vision_tower.vision_model.`; `config.json` is the Llama
    /// config with LLaVA's `mm_*` keys, the authors' `cos_*` keys and Sightline's own
    /// (`sightline_connector`, `vision_config`, `image_token_index`) so that the import is exact.
    /// - Throws: `TrainingError` unless the connector is Chain-of-Sight with positive feature levels.
    public static func writeCosLlava(_ model: MultimodalModel, to dir: String, dtype: WeightDType = .float32) throws
        -> ExportSummary
    {
        guard case .chainOfSight(let c) = model.config.connector else {
            throw TrainingError(
                "--layout cos-llava holds a Chain-of-Sight projector; the model's connector is \(model.config.connector.type)")
        }
        guard c.featureLevels.allSatisfy({ $0 > 0 }) else {
            throw TrainingError(
                "--layout cos-llava: the authors number feature levels from the first block (l{L-1}); the connector's levels \(c.featureLevels) must be positive hidden_states indices"
            )
        }
        let tensors = try model.mergedStateDict().map { (cosName($0.0), $0.1) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let weights = dir + "/model.safetensors"
        try SafetensorsFile.write(NamedTensors(tensors), to: weights, dtype: dtype, metadata: ["format": "pt"])
        var config = try jsonObject(model.config.languageModel)
        config["architectures"] = ["LlavaLlamaForCausalLM"]
        config["model_type"] = "llava_llama"
        config["tie_word_embeddings"] = model.languageModel.lmHead == nil
        config["mm_projector_type"] = "chain_of_sight"
        config["mm_hidden_size"] = c.visionDim
        config["mm_vision_select_feature"] = "patch"
        config["mm_vision_select_layer"] = c.featureLevels.last! - 1 - model.config.vision.numHiddenLayers
        config["cos_seq_feat_levels"] = c.featureLevels.map { $0 - 1 }
        config["cos_tokens_per_side"] = c.grid.height
        config["image_token_index"] = model.config.imageTokenId
        config["sightline_connector"] = try jsonObject(model.config.connector)
        var vision = try jsonObject(model.config.vision)
        vision["model_type"] = "clip_vision_model"
        config["vision_config"] = vision
        config["dtype"] = dtype.rawValue
        let files = [weights, try writeJSON(config, to: dir + "/config.json")]
        return ExportSummary(
            files: files, tensors: tensors.count, parameters: tensors.reduce(0) { $0 + $1.1.count },
            mergedLoRA: !model.loraModules.isEmpty, adapterDirectory: nil)
    }

    // MARK: JSON

    static func jsonObject<T: Encodable>(_ value: T) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as! [String: Any]
    }

    static func writeJSON(_ object: [String: Any], to path: String) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }
}
