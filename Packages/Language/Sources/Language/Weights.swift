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
        let config = try LlamaConfig.load(contentsOf: directory.appendingPathComponent("config.json"))
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        var tensors: [String: Tensor] = [:]
        if fm.fileExists(atPath: single.path) {
            tensors = try readSafetensors(single)
        } else if fm.fileExists(atPath: index.path) {
            guard
                let root = try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as? [String: Any],
                let map = root["weight_map"] as? [String: String]
            else { throw TensorError("load_pretrained", "\(index.path) has no weight_map") }
            for file in Set(map.values).sorted() {
                let url = directory.appendingPathComponent(file)
                guard fm.fileExists(atPath: url.path) else {
                    throw TensorError(
                        "load_pretrained", "shard \(file) listed in \(index.lastPathComponent) is missing")
                }
                for (k, v) in try readSafetensors(url) { tensors[k] = v }
            }
            let absent = map.keys.filter { tensors[$0] == nil }.sorted()
            guard absent.isEmpty else {
                throw TensorError(
                    "load_pretrained",
                    "tensors listed in the index but not in their shards: \(absent.prefix(8))")
            }
        } else {
            throw TensorError(
                "load_pretrained",
                "\(directory.path) has neither model.safetensors nor model.safetensors.index.json")
        }
        return try load(config: config, tensors: tensors)
    }
}
