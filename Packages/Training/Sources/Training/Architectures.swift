import Checkpoint
import Foundation
import Language
import Layers
import TensorFiles
import Vision

/// An error in a model directory's `config.json`: the file, and the value that was wrong.
public struct ArchitectureError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The `config.json` concerned.
    public var file: String
    /// What was wrong (naming the key and its value).
    public var message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

/// The architectures Sightline imports from an HF model directory: the one registry that the
/// `weights import` command and any other importer use.
public enum Architecture: String, CaseIterable, Codable, Sendable {
    /// A CLIP vision tower (`CLIPVisionModel`, or the vision half of a full CLIP checkpoint).
    case clipVision = "clip-vision"
    /// `LlamaForCausalLM`.
    case llama
    /// HF `LlavaForConditionalGeneration` (CLIP tower, `linear` / `mlp2x_gelu` projector, Llama):
    /// a whole `MultimodalModel`.
    case llava
    /// The Chain-of-Sight authors' LLaVA layout (`model.mm_projector.*`, `llava_llama`): a whole
    /// `MultimodalModel`.
    case cosLlava = "cos-llava"

    /// The HF `model_type` values of each architecture (what HF's Auto classes key on).
    public static let modelTypes: [String: Architecture] = [
        "clip_vision_model": .clipVision, "clip": .clipVision, "llama": .llama, "llava": .llava,
        "llava_llama": .cosLlava,
    ]

    /// The HF `architectures` class names of each architecture (used when `model_type` is absent).
    public static let classNames: [String: Architecture] = [
        "CLIPVisionModel": .clipVision, "CLIPVisionModelWithProjection": .clipVision, "CLIPModel": .clipVision,
        "LlamaForCausalLM": .llama, "LlamaModel": .llama, "LlavaForConditionalGeneration": .llava,
        "LlavaLlamaForCausalLM": .cosLlava,
    ]

    /// The architecture a `config.json` describes, as HF's Auto classes decide it: its `model_type`
    /// when present, else the first entry of `architectures` that Sightline knows.
    /// - Parameter path: the `config.json` file.
    /// - Throws: `ArchitectureError` naming the file for a missing or unparsable file, a
    ///   `model_type` (or `architectures` list) Sightline does not import (naming the value and the
    ///   known ones), or a config with neither key.
    public static func detect(configAt path: String) throws -> Architecture {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ArchitectureError(
                file: path,
                FileManager.default.fileExists(atPath: path) ? "cannot read: \(error.localizedDescription)" : "no such file")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ArchitectureError(file: path, "not a JSON object")
        }
        if let raw = object["model_type"] {
            guard let type = raw as? String else {
                throw ArchitectureError(file: path, "model_type is not a string: \(raw)")
            }
            guard let arch = modelTypes[type] else {
                throw ArchitectureError(
                    file: path,
                    "model_type '\(type)' is not an architecture Sightline imports (known model_type values: \(modelTypes.keys.sorted().joined(separator: ", ")); --arch overrides)"
                )
            }
            return arch
        }
        if let names = object["architectures"] as? [String] {
            if let arch = names.lazy.compactMap({ classNames[$0] }).first { return arch }
            throw ArchitectureError(
                file: path,
                "architectures \(names) names no architecture Sightline imports (known: \(classNames.keys.sorted().joined(separator: ", ")); --arch overrides)"
            )
        }
        throw ArchitectureError(file: path, "has neither model_type nor architectures; pass --arch")
    }
}

/// A model built from an HF directory and loaded strictly through `WeightLoader`.
public struct ImportedModel {
    public var architecture: Architecture
    /// The loaded module (`CLIPVisionModel`, `LlamaForCausalLM` or, for `llava` / `cos-llava`,
    /// `MultimodalModel`).
    public var module: Module
    /// The model's configuration as Sightline writes it (JSON).
    public var config: String
    /// What the load found.
    public var report: LoadReport
    /// The directory's `tokenizer.json`, read with Language's `Tokenizer` (nil when there is none or
    /// it cannot be read; `tokenizerNote` says which).
    public var tokenizer: Tokenizer?
    /// Why `tokenizer` is nil, or a mismatch with the model (an image token id the tokenizer lacks).
    public var tokenizerNote: String?

    /// Builds the model an HF directory holds and loads its weights strictly: the architecture is
    /// `architecture`, or detected from `config.json` (`Architecture.detect(configAt:)`).
    /// - Throws: `ArchitectureError` for an unknown or undetectable architecture; the errors of the
    ///   architecture's `fromPretrained` (`LoadError` for any missing, unexpected or mis-shaped tensor).
    public init(directory: String, architecture: Architecture? = nil) throws {
        let arch = try architecture ?? Architecture.detect(configAt: directory + "/config.json")
        self.architecture = arch
        switch arch {
        case .clipVision:
            let (model, report) = try CLIPVisionModel.fromPretrained(directory: directory)
            module = model
            config = String(decoding: try JSONEncoder().encode(model.config), as: UTF8.self)
            self.report = report
        case .llama:
            let (model, report) = try LlamaForCausalLM.fromPretrained(directory: directory)
            module = model
            config = String(decoding: try JSONEncoder().encode(model.config), as: UTF8.self)
            self.report = report
        case .llava, .cosLlava:
            let model = try arch == .llava
                ? LlavaImport.loadHFLlava(directory: directory) : LlavaImport.loadCosLlava(directory: directory)
            module = model
            config = try model.wholeModelConfig.jsonText()
            report = LoadReport(file: directory)
        }
        let file = directory + "/" + TokenizerFiles.tokenizer
        if !FileManager.default.fileExists(atPath: file) {
            tokenizerNote = "\(file): no tokenizer"
        } else {
            do {
                let t = try Tokenizer(contentsOf: URL(fileURLWithPath: file))
                tokenizer = t
                if let m = module as? MultimodalModel, t.token(of: m.config.imageTokenId) == nil {
                    tokenizerNote = "\(file): no token has the image token id \(m.config.imageTokenId)"
                }
            } catch {
                tokenizerNote = "\(file): not read (\(error))"
            }
        }
    }

    /// Whether the module is a whole multimodal model.
    public var isMultimodal: Bool { module is MultimodalModel }

    /// Writes the module as a Sightline HDF5 weights file (with its config and the source directory);
    /// a multimodal model to a path without the `.h5` / `.hdf5` extension becomes a stage folder that
    /// `trainer finetune` starts from (`LlavaImport.writeStageFolder`), with the source's tokenizer
    /// files (`tokenizer.json`, `tokenizer_config.json`) copied into it when `tokenizer` was read (an
    /// export of the fine-tuned model writes them again).
    public func write(to path: String, dtype: WeightDType = .float32, sourceDirectory: String) throws {
        if let model = module as? MultimodalModel, !["h5", "hdf5"].contains((path as NSString).pathExtension.lowercased()) {
            try LlavaImport.writeStageFolder(model, to: path, dtype: dtype)
            if tokenizer != nil {
                let fm = FileManager.default
                for name in [TokenizerFiles.tokenizer, TokenizerFiles.config, TokenizerFiles.specialTokensMap]
                where fm.fileExists(atPath: sourceDirectory + "/" + name) {
                    try? fm.removeItem(atPath: path + "/" + name)
                    try fm.copyItem(atPath: sourceDirectory + "/" + name, toPath: path + "/" + name)
                }
            }
            return
        }
        try WeightsFile.save(
            module: module, to: path, dtype: dtype, config: config,
            attributes: ["source_directory": sourceDirectory, "architecture": architecture.rawValue])
    }
}
