import Foundation
import Layers

/// What loading named tensors into a model found.
public struct WeightLoadReport: Equatable, Sendable, CustomStringConvertible {
    /// Parameters of the model that the tensors did not provide.
    public var missing: [String]
    /// Tensors the model has no parameter for.
    public var unexpected: [String]
    /// Tensors that were read but not needed (a tied `lm_head.weight`, RoPE `inv_freq` buffers).
    public var ignored: [String]
    /// Parameters that were set.
    public var loaded: Int

    public var description: String {
        "loaded \(loaded); missing \(missing.count)\(missing.isEmpty ? "" : " \(missing.prefix(8))"); "
            + "unexpected \(unexpected.count)\(unexpected.isEmpty ? "" : " \(unexpected.prefix(8))")"
    }
}

extension Module {
    /// Sets parameters from named tensors (HF `load_state_dict`): every name and shape is checked.
    /// - Parameters:
    ///   - tensors: name -> tensor (from safetensors shards, an HDF5 weights file, ...).
    ///   - strict: throw when a parameter is missing or a tensor is unexpected (HF `strict=True`).
    ///   - ignoring: names that may be present without a matching parameter (reported as ignored).
    /// - Returns: what was loaded, missing, unexpected.
    /// - Throws: `TensorError("load_state_dict", ...)` naming every shape mismatch, and with `strict`
    ///   the missing and unexpected names.
    @discardableResult
    public func loadStateDict(
        _ tensors: [String: Tensor], strict: Bool = true, ignoring: (String) -> Bool = { _ in false }
    ) throws -> WeightLoadReport {
        let params = namedParameters()
        let known = Set(params.map(\.0))
        var mismatched: [String] = []
        var missing: [String] = []
        for (name, p) in params {
            guard let t = tensors[name] else { missing.append(name); continue }
            if t.shape != p.shape { mismatched.append("\(name): file \(t.shape) vs model \(p.shape)") }
        }
        guard mismatched.isEmpty else {
            throw TensorError(
                "load_state_dict",
                "shape mismatch for \(mismatched.count) tensors: " + mismatched.joined(separator: "; "))
        }
        let extra = tensors.keys.filter { !known.contains($0) }.sorted()
        let ignored = extra.filter(ignoring)
        let unexpected = extra.filter { !ignoring($0) }
        if strict && (!missing.isEmpty || !unexpected.isEmpty) {
            throw TensorError("load_state_dict", "missing keys \(missing), unexpected keys \(unexpected)")
        }
        var loaded = 0
        for (name, p) in params {
            if let t = tensors[name] { p.data = t; loaded += 1 }
        }
        return WeightLoadReport(missing: missing, unexpected: unexpected, ignored: ignored, loaded: loaded)
    }
}

extension LlamaForCausalLM {
    /// Builds a model from a config and HF-named tensors (`model.safetensors`, or the union of a
    /// sharded checkpoint's files). `rotary_emb.inv_freq` buffers of older checkpoints and a tied
    /// `lm_head.weight` are ignored.
    /// - Throws: `TensorError` for a missing, unexpected or mis-shaped tensor.
    public static func load(config: LlamaConfig, tensors: [String: Tensor]) throws -> (
        LlamaForCausalLM, WeightLoadReport
    ) {
        let m = try LlamaForCausalLM(config: config)
        let report = try m.loadStateDict(tensors) { name in
            name.hasSuffix("rotary_emb.inv_freq") || (config.tieWordEmbeddings && name == "lm_head.weight")
        }
        return (m, report)
    }

    /// The tensors of a HF checkpoint (`save_pretrained`'s names and shapes): every base parameter, with
    /// attached LoRA adapters merged in (as PEFT's `merge_and_unload`) and their own tensors left out;
    /// no `lm_head.weight` when embeddings are tied.
    public func huggingFaceStateDict() throws -> [(String, Tensor)] {
        try mergedStateDict()
    }
}

extension LlamaForCausalLM {
    /// Loads a HF Llama directory: `config.json` plus `model.safetensors`, or the shards listed by
    /// `model.safetensors.index.json` (`weight_map`). Reading one safetensors file is the caller's
    /// (Checkpoint's `Safetensors` target), so this package stays free of file formats.
    /// - Parameter readSafetensors: every tensor of one file, by name.
    /// - Throws: `TensorError("load_pretrained", ...)` when no weights are found or a shard is missing,
    ///   and the errors of `load(config:tensors:)`.
    public static func load(
        directory: URL, readSafetensors: (URL) throws -> [String: Tensor]
    ) throws -> (LlamaForCausalLM, WeightLoadReport) {
        let fm = FileManager.default
        let configURL = directory.appendingPathComponent("config.json")
        let config: LlamaConfig
        do {
            config = try LlamaConfig.load(contentsOf: configURL)
            try config.validate()
        } catch let e as TensorError {
            throw TensorError("load_pretrained", "\(configURL.path): \(e.message)")
        } catch {
            throw TensorError("load_pretrained", "\(configURL.path): not a Llama config: \(error)")
        }
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        var tensors: [String: Tensor] = [:]
        if fm.fileExists(atPath: single.path) {
            tensors = try readSafetensors(single)
        } else if fm.fileExists(atPath: index.path) {
            let map = try shardMap(index)
            for file in Set(map.values).sorted() {
                let url = directory.appendingPathComponent(file)
                guard fm.fileExists(atPath: url.path) else {
                    throw TensorError("load_pretrained", "\(index.path): shard \(file) is missing")
                }
                for (k, v) in try readSafetensors(url) {
                    guard let listed = map[k] else {
                        throw TensorError(
                            "load_pretrained", "\(index.path): tensor \(k) in shard \(file) is not in weight_map")
                    }
                    guard listed == file else {
                        throw TensorError(
                            "load_pretrained", "\(index.path): tensor \(k) is in shard \(file) but weight_map says \(listed)")
                    }
                    tensors[k] = v
                }
            }
            let absent = map.keys.filter { tensors[$0] == nil }.sorted()
            guard absent.isEmpty else {
                throw TensorError(
                    "load_pretrained",
                    "\(index.path): tensors listed in weight_map but not in their shards: \(absent.prefix(8))")
            }
        } else {
            throw TensorError(
                "load_pretrained",
                "\(directory.path) has neither model.safetensors nor model.safetensors.index.json")
        }
        return try load(config: config, tensors: tensors)
    }

    /// The `weight_map` of a shard index, each shard a plain file name in the index's directory.
    /// - Throws: `TensorError` naming the index for bad JSON, a missing map, or a shard name that is
    ///   empty, `.`/`..`, holds a `/` or `\\` or NUL (so could leave the directory).
    static func shardMap(_ index: URL) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: index) } catch {
            throw TensorError("load_pretrained", "\(index.path): cannot read: \(error.localizedDescription)")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let raw = root["weight_map"] as? [String: Any]
        else { throw TensorError("load_pretrained", "\(index.path): no weight_map object") }
        var map: [String: String] = [:]
        for (k, v) in raw {
            guard let shard = v as? String else {
                throw TensorError("load_pretrained", "\(index.path): weight_map value of \(k) is not a string")
            }
            guard !shard.isEmpty, shard != ".", shard != "..", !shard.contains("/"), !shard.contains("\\"),
                !shard.utf8.contains(0)
            else {
                throw TensorError(
                    "load_pretrained",
                    "\(index.path): shard name '\(shard.prefix(80))' of \(k) is not a file name in the index's directory")
            }
            map[k] = shard
        }
        return map
    }
}
