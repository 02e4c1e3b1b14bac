import Layers

/// What a strict load did: the model keys set, and the file keys deliberately skipped.
public struct CLIPLoadReport: Sendable, CustomStringConvertible {
    /// Model parameter names (with the `vision_model.` prefix) that were set, in model order.
    public var loaded: [String]
    /// File keys that belong to other parts of a full CLIP checkpoint (`text_model.*`, projections,
    /// `logit_scale`) or are derived buffers (`position_ids`), and were skipped.
    public var ignored: [String]

    public var description: String { "loaded \(loaded.count) tensors, ignored \(ignored.count)" }
}

extension CLIPVisionModel {
    /// Maps a checkpoint key to this model's parameter name, or nil for keys a CLIP vision tower skips.
    ///
    /// Accepted spellings: HF transformers 4 and full CLIP checkpoints (`vision_model.<key>`), and
    /// transformers 5 `CLIPVisionModel.save_pretrained` (`<key>`, no prefix).
    static func modelKey(forCheckpointKey key: String) -> String? {
        let skippedPrefixes = ["text_model.", "text_projection.", "visual_projection.", "logit_scale"]
        if skippedPrefixes.contains(where: { key.hasPrefix($0) }) { return nil }
        let bare = key.hasPrefix("vision_model.") ? String(key.dropFirst("vision_model.".count)) : key
        if bare == "embeddings.position_ids" { return nil }
        return "vision_model." + bare
    }

    /// Loads weights strictly: every parameter must be present exactly once with its exact shape, and
    /// every key must be a parameter or a known skippable key.
    ///
    /// - Parameters:
    ///   - keys: the checkpoint's keys (either naming form, see `modelKey(forCheckpointKey:)`).
    ///   - shape: the stored shape of a key (checked before any value is read).
    ///   - read: reads a key's values as Float32.
    ///   - source: the file or directory, for errors.
    /// - Throws: `VisionError` naming `source` and listing every missing, unexpected, duplicated or
    ///   mis-shaped key; nothing is modified then.
    @discardableResult
    public func load(
        keys: [String], shape: (String) throws -> [Int], read: (String) throws -> Tensor, source: String
    ) throws -> CLIPLoadReport {
        let params = namedParameters()
        let expected = Dictionary(uniqueKeysWithValues: params.map { ($0.0, $0.1) })
        var chosen: [String: String] = [:]  // model name -> checkpoint key
        var ignored: [String] = [], unexpected: [String] = [], duplicated: [String] = [],
            mismatched: [String] = []
        for key in keys {
            guard let name = Self.modelKey(forCheckpointKey: key) else {
                ignored.append(key)
                continue
            }
            guard let p = expected[name] else {
                unexpected.append(key)
                continue
            }
            if let other = chosen[name] {
                duplicated.append("\(other) and \(key)")
                continue
            }
            chosen[name] = key
            let s = try shape(key)
            if s != p.shape { mismatched.append("\(key): checkpoint \(s), model \(p.shape)") }
        }
        let missing = params.map(\.0).filter { chosen[$0] == nil }
        var problems: [String] = []
        if !missing.isEmpty {
            problems.append("missing \(missing.count): \(missing.joined(separator: ", "))")
        }
        if !unexpected.isEmpty {
            problems.append("unexpected \(unexpected.count): \(unexpected.joined(separator: ", "))")
        }
        if !duplicated.isEmpty { problems.append("given twice: \(duplicated.joined(separator: "; "))") }
        if !mismatched.isEmpty { problems.append("shape mismatch: \(mismatched.joined(separator: "; "))") }
        guard problems.isEmpty else {
            throw VisionError(
                source, "cannot load the CLIP vision tower: " + problems.joined(separator: "; "))
        }
        var values: [(Parameter, Tensor)] = []
        for (name, p) in params {
            let t = try read(chosen[name]!)
            guard t.shape == p.shape else {
                throw VisionError(source, "\(chosen[name]!) read as \(t.shape), expected \(p.shape)")
            }
            values.append((p, t))
        }
        for (p, t) in values { p.data = t }
        return CLIPLoadReport(loaded: params.map(\.0), ignored: ignored)
    }

    /// Loads weights strictly from named tensors (see `load(keys:shape:read:source:)`).
    @discardableResult
    public func load(stateDict: [String: Tensor], source: String = "state dict") throws -> CLIPLoadReport {
        try load(
            keys: stateDict.keys.sorted(), shape: { stateDict[$0]!.shape }, read: { stateDict[$0]! },
            source: source)
    }
}
