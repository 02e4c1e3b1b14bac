import Foundation
import Tensor
import TensorFiles

extension LlamaForCausalLM {
    /// The load rules of a Llama checkpoint, stated once (every load of a decoder uses them): HF
    /// names as they are, the derived buffers `rotary_emb.inv_freq` (older checkpoints) and
    /// `position_ids` ignored, and with tied embeddings a stored `lm_head.weight` ignored (the head
    /// reads `model.embed_tokens.weight`).
    /// - Parameter strict: throw on anything missing, unexpected or mis-shaped (HF `strict=True`).
    public static func loadOptions(config: LlamaConfig, strict: Bool = true) -> LoadOptions {
        LoadOptions(
            strict: strict,
            ignored: LoadOptions.derivedBuffers + (config.tieWordEmbeddings ? ["lm_head.weight"] : []))
    }

    /// Builds a model from `config` and loads `source` (a safetensors file or sharded directory, a
    /// PyTorch state dict, tensors in memory) through `WeightLoader` under `loadOptions(config:strict:)`.
    /// - Returns: the model and the load report.
    /// - Throws: `LoadError` naming the source and every missing, unexpected or mis-shaped tensor;
    ///   `TensorFileError` when a tensor cannot be read; `TensorError` for an invalid config.
    public static func load(config: LlamaConfig, from source: TensorSource, strict: Bool = true) throws
        -> (model: LlamaForCausalLM, report: LoadReport)
    {
        let model = try LlamaForCausalLM(config: config)
        let report = try WeightLoader.load(
            source, into: model, options: loadOptions(config: config, strict: strict))
        return (model, report)
    }

    /// Builds the model from an HF directory (`config.json` + `model.safetensors` or a sharded
    /// `model.safetensors.index.json`, read by TensorFiles' one sharded reader) and loads it strictly.
    /// - Returns: the model and the load report.
    /// - Throws: `TensorError` naming `config.json` when it is missing or not a Llama config;
    ///   `TensorFileError` naming the directory, the index or a shard when the weights cannot be opened
    ///   (an index entry that leaves the directory, a tensor the index omits or puts in another shard);
    ///   `LoadError` for any missing, unexpected or mis-shaped tensor.
    public static func fromPretrained(directory: String) throws -> (model: LlamaForCausalLM, report: LoadReport) {
        let configURL = URL(fileURLWithPath: directory).appendingPathComponent("config.json")
        let config: LlamaConfig
        do {
            config = try LlamaConfig.load(contentsOf: configURL)
            try config.validate()
        } catch let e as TensorError {
            throw TensorError("fromPretrained", "\(configURL.path): \(e.message)")
        } catch {
            throw TensorError("fromPretrained", "\(configURL.path): not a Llama config: \(error)")
        }
        // The tensor table before the model: nothing is allocated for a config the weights cannot fill.
        let table = try openSafetensors(directory)
        let available = table.tensorInfos.reduce(0) { $0 &+ $1.elementCount }
        if let need = config.checkedParameterCount, need > available {
            throw TensorError(
                "fromPretrained",
                "\(configURL.path) describes a model of \(need) parameters but the weights in \(directory) hold \(available) values")
        }
        return try load(config: config, from: table)
    }

    /// Writes an HF directory that `LlamaForCausalLM.from_pretrained` loads: `config.json` and
    /// `model.safetensors` (float32, HF names, LoRA adapters merged in).
    public func save(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let json = try JSONEncoder().encode(config)
        try DurableFile.write(json, to: directory + "/config.json")
        try SafetensorsFile.write(
            NamedTensors(try huggingFaceStateDict()), to: directory + "/model.safetensors",
            metadata: ["format": "pt"])
    }
}
