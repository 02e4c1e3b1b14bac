import Foundation
import Tensor
import TensorFiles

/// The Chain-of-Sight authors' projector file: their LLaVA-based trainer saves the resampler alone
/// (`mm_projector.bin`, a PyTorch pickle) with its `state_dict` names under `model.mm_projector.`.
/// The names are the ones `ChainOfSight` already uses, so the file loads as it is once the prefix is
/// dropped; the configuration is read off the names and shapes.
///
/// ```swift
/// let file = try TorchStateDict(path: "mm_projector.bin")      // import Checkpoint
/// let connector = try ChainOfSightProjectorFile.load(file)     // levels from l15, l22: [16, 23]
/// ```
public enum ChainOfSightProjectorFile {
    /// The key prefix of the authors' projector file.
    public static let prefix = "model.mm_projector."

    /// The configuration a projector file describes: scales from `cls_token_w{ws}_q{nq}` (file
    /// order), feature levels from the blocks' `l{L}` fields (the authors' 0-based block numbers,
    /// so level L is HF `hidden_states[L + 1]`, in first-appearance order), `visionDim` and `dim`
    /// from `to_kv` `[2 dim, visionDim]`, `llmDim` from `out_proj`, `mlpRatio` from `fc1`.
    /// - Parameters:
    ///   - grid: the patch grid; default: square, the side of the largest window (the global window).
    ///   - headDim: channels per head, which the weights do not record (the released 64).
    /// - Throws: `TensorError` naming the file and the key when a name or shape does not fit.
    public static func configuration(
        _ source: TensorSource, prefix: String = prefix, grid: Grid? = nil, headDim: Int = 64
    ) throws -> ChainOfSightConfig {
        let op = "ChainOfSightProjectorFile"
        let infos = source.tensorInfos.filter { $0.name.hasPrefix(prefix) }
        guard !infos.isEmpty else {
            throw TensorError(op, "\(source.path): no tensor name starts with '\(prefix)'")
        }
        var scales: [WindowScale] = []
        var levels: [Int] = []
        var shapes: [String: [Int]] = [:]
        for info in infos {
            let name = String(info.name.dropFirst(prefix.count))
            shapes[name] = info.shape
            if name.hasPrefix("cls_token_") {
                guard let f = nameFields(name.dropFirst("cls_token_".count)), f.level == nil,
                    info.shape.count == 3, info.shape[0] == 1, info.shape[1] == f.queries
                else {
                    throw TensorError(
                        op, "\(source.path): '\(info.name)' \(info.shape) is not cls_token_w{ws}_q{nq} [1, nq, dim]")
                }
                scales.append(WindowScale(windowSize: f.window, queries: f.queries))
            } else if name.hasPrefix("attn_0_"), let dot = name.firstIndex(of: ".") {
                guard let f = nameFields(name[name.index(name.startIndex, offsetBy: 7)..<dot]), let l = f.level
                else {
                    throw TensorError(op, "\(source.path): '\(info.name)' is not attn_0_w{ws}_l{L}_q{nq}.*")
                }
                if !levels.contains(l + 1) { levels.append(l + 1) }
            }
        }
        guard let first = scales.first, let kv = infos.first(where: { $0.name.hasSuffix(".to_kv.weight") }),
            kv.shape.count == 2, kv.shape[0] % 2 == 0
        else {
            throw TensorError(op, "\(source.path): no cls_token_* query or to_kv weight under '\(prefix)'")
        }
        guard let out = shapes["out_proj.weight"], out.count == 2 else {
            throw TensorError(op, "\(source.path): missing '\(prefix)out_proj.weight'")
        }
        let dim = kv.shape[0] / 2
        let fc1 = infos.first { $0.name.hasSuffix(".fc1.weight") }?.shape ?? [4 * dim, dim]
        let side = scales.map(\.windowSize).max() ?? first.windowSize
        return ChainOfSightConfig(
            visionDim: kv.shape[1], dim: dim, llmDim: out[0], headDim: headDim, mlpRatio: max(fc1[0] / dim, 1),
            grid: grid ?? .square(side), scales: scales, featureLevels: levels)
    }

    /// Builds the Chain-of-Sight connector a projector file describes and loads every tensor under
    /// `prefix` into it strictly with the shared `WeightLoader` (keys outside `prefix` are skipped).
    /// - Throws: `TensorError` when the names do not describe a Chain-of-Sight projector; `LoadError`
    ///   (the whole report: every missing, unexpected or mis-shaped key with both shapes);
    ///   `TensorFileError` when a tensor cannot be read.
    public static func load(
        _ source: TensorSource, prefix: String = prefix, grid: Grid? = nil, headDim: Int = 64
    ) throws -> ChainOfSight {
        let config = try configuration(source, prefix: prefix, grid: grid, headDim: headDim)
        let connector = try ChainOfSight(config)
        let expected = connector.stateDict().map { ExpectedTensor(prefix + $0.0, shape: $0.1.shape) }
        let (tensors, _) = try WeightLoader.load(
            from: source, expected: expected, options: LoadOptions(strict: true, prefix: prefix))
        for (name, t) in tensors {
            connector.tensorSlot(named: String(name.dropFirst(prefix.count)))!.set(t)
        }
        return connector
    }

    /// `w{ws}_q{nq}` or `w{ws}_l{L}_q{nq}`.
    static func nameFields<S: StringProtocol>(_ s: S) -> (window: Int, level: Int?, queries: Int)? {
        let parts = String(s).split(separator: "_")
        func value(_ p: Substring, _ tag: Character) -> Int? {
            p.first == tag ? Int(p.dropFirst()) : nil
        }
        if parts.count == 2, let w = value(parts[0], "w"), let q = value(parts[1], "q") { return (w, nil, q) }
        if parts.count == 3, let w = value(parts[0], "w"), let l = value(parts[1], "l"),
            let q = value(parts[2], "q")
        {
            return (w, l, q)
        }
        return nil
    }
}
