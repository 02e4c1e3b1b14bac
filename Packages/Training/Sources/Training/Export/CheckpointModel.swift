import Bridges
import Checkpoint
import Foundation
import Language
import Layers
import TensorFiles
import Vision

/// A `MultimodalModel` rebuilt from a training checkpoint of any stage, with the checkpoint's
/// adapters attached (not merged) when it has any.
///
/// The architecture comes from the checkpoint's `model_config` document (every checkpoint the
/// `Trainer` writes has it); for older checkpoints, from the part folders of the run (`vision/`,
/// `connector/`, `language/` of the stage, or of the stage a fine-tuning run started from). The
/// adapters are read off the tensor names (`<module>.lora_A.weight` `[r, in]`); their scale comes from
/// the `lora_config` document, else from the stage's `config.yaml` (`finetune.lora.alpha`).
///
/// ```swift
/// let source = try CheckpointModel(checkpoint: "runs/demo/finetune/adapter/checkpoints/latest")
/// try ModelExport.export(source, to: "model.h5", layout: .hdf5, dtype: .bfloat16, mergeLoRA: true)
/// ```
public struct CheckpointModel {
    /// The model, every tensor loaded strictly from the checkpoint.
    public let model: MultimodalModel
    /// The checkpoint file read.
    public let path: String
    /// Its trainer `global_step`.
    public let step: Int
    /// The attached adapters (targets are full names in `model`), or nil.
    public let lora: LoRAConfig?
    /// The tokenizer the model was trained with (`ModelTokenizer.detect` over the checkpoint's stage
    /// folders), or nil when nothing says.
    public let tokenizer: ModelTokenizer?

    /// Reads a checkpoint: a checkpoint file, a `latest` pointer, a checkpoints directory, or a stage
    /// folder (its `checkpoints/`, or `adapter/checkpoints/` of a fine-tuning stage).
    /// - Throws: `TrainingError` naming the path when no checkpoint is found or the architecture cannot
    ///   be determined, or naming the tensor (and both shapes) when the checkpoint does not fit it;
    ///   `TensorFileError` for an unreadable file.
    public init(checkpoint: String) throws {
        let file = try Self.resolve(checkpoint)
        let saved = try TrainingCheckpoint.read(from: file)
        let docs = saved.trainer.documents
        let config: ModelConfig
        if let c = try docs.decode(ModelConfig.self, ModelDocuments.modelConfig) {
            config = c
        } else {
            config = try Self.partsConfig(near: file)
        }
        let model = try MultimodalModel(config: config)
        // Adapters: one per `<module>.lora_A.weight` of the checkpoint.
        let adapted = saved.model.names.compactMap { n -> (String, [Int])? in
            n.hasSuffix(".lora_A.weight") ? (String(n.dropLast(".lora_A.weight".count)), saved.model[n]!.shape) : nil
        }
        var lora: LoRAConfig? = nil
        if let first = adapted.first {
            guard first.1.count == 2, adapted.allSatisfy({ $0.1 == [first.1[0], $0.1[1]] }) else {
                throw TrainingError("\(file): adapters of different ranks (\(adapted.map { "\($0.0): \($0.1)" }))")
            }
            let r = first.1[0]
            var c: LoRAConfig
            if let documented = try docs.decode(LoRAConfig.self, ModelDocuments.lora) {
                c = documented
            } else {
                c = LoRAConfig(r: r, loraAlpha: try Self.runLoRAAlpha(near: file), loraDropout: 0)
                c.modulesToSave = config.freezeConnector ? nil : ["multi_modal_projector"]
            }
            guard c.r == r else {
                throw TrainingError("\(file): lora_config says r = \(c.r), the adapters' lora_A have \(r) rows")
            }
            c.targetModules = adapted.map(\.0)
            c.targetPattern = nil
            try model.attachLoRA(c)
            lora = c
        }
        var problems: [String] = []
        let stored = Set(saved.model.names)
        for (name, tensor) in model.stateDict() {
            guard let t = saved.model[name] else { problems.append("missing \(name)"); continue }
            guard t.shape == tensor.shape else {
                problems.append("\(name): checkpoint \(t.shape), model \(tensor.shape)")
                continue
            }
            model.tensorSlot(named: name)!.set(t)
        }
        let expected = Set(model.stateDict().map(\.0))
        problems += stored.subtracting(expected).sorted().map { "unexpected \($0)" }
        guard problems.isEmpty else {
            throw TrainingError(
                "\(file): the checkpoint does not fit the model its config describes (\(problems.count) problem(s)): \(problems.prefix(5).joined(separator: "; "))"
            )
        }
        model.eval()
        self.model = model
        self.path = file
        self.step = saved.trainer.globalStep
        self.lora = lora
        self.tokenizer = ModelTokenizer.detect(
            stages: Self.candidateStages(near: file), vocabularySize: config.languageModel.vocabSize)
    }

    /// The checkpoint file a path names.
    /// - Throws: `TrainingError` naming the path when it holds no checkpoint.
    public static func resolve(_ path: String) throws -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TrainingError("\(path): no such file or directory")
        }
        if !isDir.boolValue {
            guard (path as NSString).lastPathComponent == CheckpointDirectory.pointerName else { return path }
            return try pointed(by: path)
        }
        for sub in ["", "/checkpoints", "/adapter/checkpoints"] {
            let pointer = path + sub + "/" + CheckpointDirectory.pointerName
            if fm.fileExists(atPath: pointer) { return try pointed(by: pointer) }
        }
        throw TrainingError(
            "\(path): no checkpoint here (looked for latest, checkpoints/latest and adapter/checkpoints/latest)")
    }

    private static func pointed(by pointer: String) throws -> String {
        let text = (try? String(contentsOfFile: pointer, encoding: .utf8)) ?? ""
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard CheckpointDirectory.step(ofFileName: name) != nil else {
            throw TrainingError("\(pointer): does not name a checkpoint file ('\(name.prefix(80))')")
        }
        return (pointer as NSString).deletingLastPathComponent + "/" + name
    }

    /// Stage folders that may hold the parts of the model a checkpoint at `file` trained: its stage
    /// (`<stage>/checkpoints/`, or `<stage>/adapter/checkpoints/` for fine-tuning), then the stages a
    /// fine-tuning run starts from.
    static func candidateStages(near file: String) -> [String] {
        let checkpoints = (file as NSString).deletingLastPathComponent
        var stage = (checkpoints as NSString).deletingLastPathComponent
        if (stage as NSString).lastPathComponent == "adapter" { stage = (stage as NSString).deletingLastPathComponent }
        let run = (stage as NSString).deletingLastPathComponent
        return [stage, run + "/scale-tokens", run + "/pretrain"]
    }

    static func partsConfig(near file: String) throws -> ModelConfig {
        let fm = FileManager.default
        for stage in candidateStages(near: file)
        where fm.fileExists(atPath: stage + "/vision/config.json") && fm.fileExists(atPath: stage + "/language/config.json")
            && fm.fileExists(atPath: stage + "/connector/" + ConnectorFiles.config)
        {
            let vision = try CLIPVisionConfig.load(contentsOf: stage + "/vision/config.json")
            let language = try LlamaConfig.load(contentsOf: URL(fileURLWithPath: stage + "/language/config.json"))
            let connector: ConnectorConfiguration
            do {
                connector = try JSONDecoder().decode(
                    ConnectorConfiguration.self,
                    from: Data(contentsOf: URL(fileURLWithPath: stage + "/connector/" + ConnectorFiles.config)))
            } catch {
                throw TrainingError("\(stage)/connector/\(ConnectorFiles.config): \(error)")
            }
            return ModelConfig(
                vision: vision, connector: connector, languageModel: language, imageTokenId: SyntheticVocabulary.image)
        }
        throw TrainingError(
            "\(file): the checkpoint has no \(ModelDocuments.modelConfig) document and no part folders (vision/, connector/, language/) were found in \(candidateStages(near: file).joined(separator: ", "))"
        )
    }

    static func runLoRAAlpha(near file: String) throws -> Double {
        for stage in candidateStages(near: file).prefix(1) {
            let yaml = stage + "/config.yaml"
            if FileManager.default.fileExists(atPath: yaml) {
                return try TrainingConfig.load(path: yaml).finetune.lora.alpha
            }
        }
        throw TrainingError(
            "\(file): the checkpoint has LoRA adapters but no \(ModelDocuments.lora) document and no config.yaml in its stage folder (their scale is unknown)"
        )
    }
}
