import Foundation
import Tensor

/// A tensor a model expects: its name and shape. A model's parameter list, described without the
/// model (so that any module tree, or a plain list, can be loaded into).
public struct ExpectedTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]

    public init(_ name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// How file keys are matched to expected names: a model's load rules. Each model states its rules in
/// one place (`CLIPVisionModel.loadOptions`, `LlamaForCausalLM.loadOptions`, `Connector.loadOptions`),
/// and every `fromPretrained` passes them to `WeightLoader`.
///
/// A file key is matched in this order: outside `keyPrefix` -> skipped; `keyPrefix` removed;
/// `keyRewrites` applied; a derived buffer (`ignored`) -> ignored; under one of `skippedPrefixes` ->
/// skipped; then matched to an expected name directly or through `optionalPrefixes`.
public struct LoadOptions: Sendable {
    /// Throw `LoadError` (before reading anything) when a key is missing or unexpected or a shape
    /// differs; when false, load what matches and report the rest.
    public var strict: Bool
    /// Load only names that start with this (`"vision_model."`); file keys outside it are skipped, not
    /// unexpected, and expected names outside it are not missing.
    public var prefix: String?
    /// Derived buffers that are never loaded, never missing and never unexpected: a name is ignored
    /// when it equals an entry or ends with `"." + entry`.
    public var ignored: [String]
    /// Prefixes a file may have or lack: with `["vision_model."]`, the file key `encoder.x` loads
    /// into `vision_model.encoder.x` and `vision_model.encoder.x` into `encoder.x`.
    public var optionalPrefixes: [String]
    /// The prefix every file key of this model carries, removed before matching: a LLaVA
    /// `mm_projector.bin` stores the connector's `0.weight` as `model.mm_projector.0.weight`. File keys
    /// without it belong to other models of the same file and are skipped.
    public var keyPrefix: String?
    /// File keys that belong to other parts of a checkpoint (a full CLIP checkpoint's `text_model.`)
    /// and are skipped, not unexpected.
    public var skippedPrefixes: [String]
    /// Infix rewrites applied in order to every key (after `keyPrefix` is removed): PEFT's in-memory
    /// names carry the adapter name (`q_proj.lora_A.default.weight`) that its saved files drop.
    /// A renamed key is reported in `LoadReport.renamed`.
    public var keyRewrites: [KeyRewrite]

    /// Replaces every occurrence of `from` in a key by `to`.
    public struct KeyRewrite: Equatable, Sendable {
        public var from: String
        public var to: String

        public init(_ from: String, _ to: String) {
            self.from = from
            self.to = to
        }
    }

    /// Buffers that models compute rather than load: rotary inverse frequencies and position ids.
    public static let derivedBuffers = ["rotary_emb.inv_freq", "position_ids"]

    public init(
        strict: Bool = true, prefix: String? = nil, ignored: [String] = LoadOptions.derivedBuffers,
        optionalPrefixes: [String] = [], keyPrefix: String? = nil, skippedPrefixes: [String] = [],
        keyRewrites: [KeyRewrite] = []
    ) {
        self.strict = strict
        self.prefix = prefix
        self.ignored = ignored
        self.optionalPrefixes = optionalPrefixes
        self.keyPrefix = keyPrefix
        self.skippedPrefixes = skippedPrefixes
        self.keyRewrites = keyRewrites
    }

    /// Whether `name` is a derived buffer in `ignored`.
    public func isIgnored(_ name: String) -> Bool {
        ignored.contains { name == $0 || name.hasSuffix("." + $0) }
    }
}

/// What a load found: every problem at once.
public struct LoadReport: CustomStringConvertible, Sendable {
    public struct ShapeMismatch: Equatable, Sendable {
        public var name: String
        public var expected: [Int]
        public var found: [Int]

        public init(name: String, expected: [Int], found: [Int]) {
            self.name = name
            self.expected = expected
            self.found = found
        }
    }
    public struct Conversion: Equatable, Sendable {
        /// The expected name.
        public var name: String
        /// The stored type converted to float32.
        public var from: StoredDType

        public init(name: String, from: StoredDType) {
            self.name = name
            self.from = from
        }
    }
    public struct Rename: Equatable, Sendable {
        public var fileKey: String
        public var name: String

        public init(fileKey: String, name: String) {
            self.fileKey = fileKey
            self.name = name
        }
    }

    /// The file loaded from.
    public var file: String
    /// Expected names that were (or, in a strict load that failed, would have been) loaded, in expected order.
    public var loaded: [String] = []
    /// File keys loaded under another name (optional prefixes).
    public var renamed: [Rename] = []
    /// Expected names the file lacks.
    public var missing: [String] = []
    /// File keys no expected name takes.
    public var unexpected: [String] = []
    /// Names whose shape in the file differs (not loaded).
    public var shapeMismatches: [ShapeMismatch] = []
    /// Loaded tensors stored in a type other than float32.
    public var conversions: [Conversion] = []
    /// File keys that are derived buffers (not loaded).
    public var ignored: [String] = []
    /// File keys outside `prefix` or `keyPrefix`, or under `skippedPrefixes`.
    public var skipped: [String] = []

    public init(file: String) { self.file = file }

    /// True when nothing is missing or unexpected and every shape matches.
    public var isClean: Bool { missing.isEmpty && unexpected.isEmpty && shapeMismatches.isEmpty }

    public var description: String {
        var lines = [
            "\(file): loaded \(loaded.count), missing \(missing.count), unexpected \(unexpected.count), "
                + "shape mismatches \(shapeMismatches.count), converted \(conversions.count), ignored \(ignored.count), "
                + "skipped \(skipped.count)"
        ]
        for m in missing { lines.append("  missing: \(m)") }
        for u in unexpected { lines.append("  unexpected: \(u)") }
        for s in shapeMismatches {
            lines.append(
                "  shape mismatch: \(s.name): expected \(fmtShape(s.expected)), file has \(fmtShape(s.found))"
            )
        }
        for c in conversions { lines.append("  converted: \(c.name): \(c.from.rawValue) -> float32") }
        for r in renamed { lines.append("  renamed: \(r.fileKey) -> \(r.name)") }
        for i in ignored { lines.append("  ignored (derived): \(i)") }
        return lines.joined(separator: "\n")
    }
}

/// A strict load found problems; `report` lists them all.
public struct LoadError: Error, CustomStringConvertible, Sendable {
    public var report: LoadReport
    public var description: String { "strict load failed: \(report)" }
}

/// Loads tensors from any `TensorSource` into a list of expected names and shapes, with a report.
///
/// ```swift
/// let source = try openTensorFile("clip-vit-large-patch14.safetensors")
/// let (tensors, report) = try WeightLoader.load(from: source, expected: model.expectedTensors,
///                                               options: LoadOptions(prefix: "vision_model."))
/// print(report)
/// ```
public enum WeightLoader {
    /// Matches the file's keys to `expected` without reading any values.
    /// - Returns: the report and, for each name to load, the file key it comes from (expected order).
    public static func plan(
        _ source: TensorSource, expected: [ExpectedTensor], options: LoadOptions = LoadOptions()
    ) -> (report: LoadReport, keys: [(fileKey: String, name: String)]) {
        var report = LoadReport(file: source.path)
        let considered = expected.filter { !options.isIgnored($0.name) }
        let byName = Dictionary(considered.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func inScope(_ name: String) -> Bool { options.prefix.map { name.hasPrefix($0) } ?? true }
        func resolve(_ key: String) -> String? {
            if byName[key] != nil { return key }
            for p in options.optionalPrefixes {
                if key.hasPrefix(p), byName[String(key.dropFirst(p.count))] != nil {
                    return String(key.dropFirst(p.count))
                }
                if byName[p + key] != nil { return p + key }
            }
            return nil
        }
        var claimed: [String: String] = [:]
        var mismatched = Set<String>()
        for info in source.tensorInfos {
            let fileKey = info.name
            var key = fileKey
            if let kp = options.keyPrefix {
                guard key.hasPrefix(kp) else {
                    report.skipped.append(fileKey)
                    continue
                }
                key = String(key.dropFirst(kp.count))
            }
            for r in options.keyRewrites { key = key.replacingOccurrences(of: r.from, with: r.to) }
            if options.isIgnored(key) {
                report.ignored.append(fileKey)
                continue
            }
            if options.skippedPrefixes.contains(where: { key.hasPrefix($0) }) {
                report.skipped.append(fileKey)
                continue
            }
            guard let name = resolve(key) else {
                let visible = inScope(key) || options.optionalPrefixes.contains { inScope($0 + key) }
                if visible { report.unexpected.append(fileKey) } else { report.skipped.append(fileKey) }
                continue
            }
            guard inScope(name) else {
                report.skipped.append(fileKey)
                continue
            }
            if claimed[name] != nil || mismatched.contains(name) {
                report.unexpected.append(fileKey)
                continue
            }
            let want = byName[name]!.shape
            if info.shape != want {
                report.shapeMismatches.append(.init(name: name, expected: want, found: info.shape))
                mismatched.insert(name)
                continue
            }
            claimed[name] = fileKey
            if fileKey != name { report.renamed.append(.init(fileKey: fileKey, name: name)) }
            if info.dtype != .float32 { report.conversions.append(.init(name: name, from: info.dtype)) }
        }
        var keys: [(String, String)] = []
        for e in considered where inScope(e.name) {
            if let key = claimed[e.name] {
                keys.append((key, e.name))
                report.loaded.append(e.name)
            } else if !mismatched.contains(e.name) {
                report.missing.append(e.name)
            }
        }
        return (report, keys)
    }

    /// Reads the tensors of `source` that match `expected`.
    /// - Returns: the tensors under their expected names (expected order) and the report.
    /// - Throws: `LoadError` listing every problem when `options.strict` and the report is not clean
    ///   (before reading anything); `TensorFileError` when a tensor cannot be read.
    public static func load(
        from source: TensorSource, expected: [ExpectedTensor], options: LoadOptions = LoadOptions()
    ) throws -> (tensors: NamedTensors, report: LoadReport) {
        let (report, keys) = plan(source, expected: expected, options: options)
        if options.strict && !report.isClean { throw LoadError(report: report) }
        var out = NamedTensors()
        for (key, name) in keys { out[name] = try source.readTensor(key) }
        return (out, report)
    }
}
