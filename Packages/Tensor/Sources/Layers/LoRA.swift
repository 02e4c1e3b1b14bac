import Foundation

// LoRA lives here, next to `Linear`, because every model family adapts its projections the same way
// (one owner): the Llama decoder (Language), the CLIP tower (Vision) and the connectors (Bridges).
// PEFT's `adapter_config.json` and its tensor names are the interchange format of the adapter itself,
// independent of the model and of any file container, so the config and the named-tensor export stay
// here too; loading an adapter file goes through TensorFiles' one loader
// (`WeightLoader.loadLoRAAdapter`, `LoadOptions.peftAdapter`). The lists of
// module names a model family is usually adapted at (the naming presets) belong to the package that
// owns that family's names.

/// A LoRA adapter's settings, read and written as PEFT's `adapter_config.json`.
///
/// Target modules follow PEFT's rule: a list matches a module whose dotted name equals an entry or
/// ends with `"." + entry` (`q_proj` matches `model.layers.3.self_attn.q_proj`); a single string
/// (`targetPattern`) is a regular expression the whole name must match.
public struct LoRAConfig: Codable, Equatable, Sendable {
    /// Rank r.
    public var r: Int
    /// Scaling numerator: the adapter adds `(alpha / r) * B A x`.
    public var loraAlpha: Double
    /// Dropout on the adapter's input while training.
    public var loraDropout: Double
    /// Module names (suffixes) to adapt; the default is HF's attention projection names of decoder
    /// models (`q_proj`, `k_proj`, `v_proj`, `o_proj`), PEFT's choice for Llama.
    public var targetModules: [String]
    /// A regular expression over full module names, used instead of `targetModules` when set.
    public var targetPattern: String?
    /// Modules trained fully and saved with the adapter (PEFT `modules_to_save`; for us the connector).
    public var modulesToSave: [String]?
    /// Rank-stabilised scaling `alpha / sqrt(r)` (PEFT `use_rslora`).
    public var useRslora: Bool
    public var taskType: String
    public var baseModelNameOrPath: String?
    public var inferenceMode: Bool

    public init(
        r: Int = 8, loraAlpha: Double = 16, loraDropout: Double = 0.05,
        targetModules: [String] = ["q_proj", "k_proj", "v_proj", "o_proj"], targetPattern: String? = nil,
        modulesToSave: [String]? = nil, useRslora: Bool = false, taskType: String = "CAUSAL_LM",
        baseModelNameOrPath: String? = nil, inferenceMode: Bool = true
    ) {
        self.r = r
        self.loraAlpha = loraAlpha
        self.loraDropout = loraDropout
        self.targetModules = targetModules
        self.targetPattern = targetPattern
        self.modulesToSave = modulesToSave
        self.useRslora = useRslora
        self.taskType = taskType
        self.baseModelNameOrPath = baseModelNameOrPath
        self.inferenceMode = inferenceMode
    }

    /// The adapter's multiplier: `alpha / r`, or `alpha / sqrt(r)` with `useRslora`.
    public var scale: Float { Float(useRslora ? loraAlpha / Double(r).squareRoot() : loraAlpha / Double(r)) }

    /// Whether the module at dotted path `name` is adapted (an invalid `targetPattern` matches
    /// nothing; `Module.attachLoRA` reports it).
    public func targets(_ name: String) -> Bool {
        if let p = targetPattern {
            guard let re = try? NSRegularExpression(pattern: "^(?:" + p + ")$") else { return false }
            return re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        }
        return targetModules.contains { name == $0 || name.hasSuffix("." + $0) }
    }

    /// Whether the module at `name` is one of `modulesToSave`.
    public func saves(_ name: String) -> Bool {
        (modulesToSave ?? []).contains { name == $0 || name.hasSuffix("." + $0) }
    }

    enum CodingKeys: String, CodingKey {
        case r, loraAlpha = "lora_alpha", loraDropout = "lora_dropout", targetModules = "target_modules"
        case modulesToSave = "modules_to_save", useRslora = "use_rslora", taskType = "task_type"
        case baseModelNameOrPath = "base_model_name_or_path", inferenceMode = "inference_mode"
        case peftType = "peft_type", bias, fanInFanOut = "fan_in_fan_out", initLoraWeights =
            "init_lora_weights"
        case useDora = "use_dora", layersToTransform = "layers_to_transform", layersPattern = "layers_pattern"
        case rankPattern = "rank_pattern", alphaPattern = "alpha_pattern", revision, loraBias = "lora_bias"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decodeIfPresent(String.self, forKey: .peftType) ?? "LORA"
        guard type == "LORA" else {
            throw DecodingError.dataCorruptedError(
                forKey: .peftType, in: c, debugDescription: "peft_type \(type) is not LORA")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .useDora) == true {
            throw DecodingError.dataCorruptedError(
                forKey: .useDora, in: c, debugDescription: "DoRA adapters are not supported")
        }
        if let bias = try c.decodeIfPresent(String.self, forKey: .bias), bias != "none" {
            throw DecodingError.dataCorruptedError(
                forKey: .bias, in: c, debugDescription: "bias \"\(bias)\" is not supported (only \"none\")")
        }
        var list = ["q_proj", "k_proj", "v_proj", "o_proj"]
        var pattern: String? = nil
        if let l = try? c.decode([String].self, forKey: .targetModules) {
            list = l
        } else if let s = try? c.decode(String.self, forKey: .targetModules) {
            pattern = s; list = []
        }
        let alpha: Double
        if let a = try? c.decode(Double.self, forKey: .loraAlpha) { alpha = a } else { alpha = 8 }
        self.init(
            r: try c.decodeIfPresent(Int.self, forKey: .r) ?? 8, loraAlpha: alpha,
            loraDropout: try c.decodeIfPresent(Double.self, forKey: .loraDropout) ?? 0,
            targetModules: list, targetPattern: pattern,
            modulesToSave: try c.decodeIfPresent([String].self, forKey: .modulesToSave),
            useRslora: try c.decodeIfPresent(Bool.self, forKey: .useRslora) ?? false,
            taskType: try c.decodeIfPresent(String.self, forKey: .taskType) ?? "CAUSAL_LM",
            baseModelNameOrPath: try c.decodeIfPresent(String.self, forKey: .baseModelNameOrPath),
            inferenceMode: try c.decodeIfPresent(Bool.self, forKey: .inferenceMode) ?? true)
    }

    /// Writes the fields PEFT's `LoraConfig` reads (the rest take PEFT's defaults).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("LORA", forKey: .peftType)
        try c.encode(r, forKey: .r)
        // PEFT writes an integer alpha when it is one.
        if loraAlpha.rounded() == loraAlpha {
            try c.encode(Int(loraAlpha), forKey: .loraAlpha)
        } else {
            try c.encode(loraAlpha, forKey: .loraAlpha)
        }
        try c.encode(loraDropout, forKey: .loraDropout)
        if let targetPattern {
            try c.encode(targetPattern, forKey: .targetModules)
        } else {
            try c.encode(targetModules.sorted(), forKey: .targetModules)
        }
        if let m = modulesToSave {
            try c.encode(m, forKey: .modulesToSave)
        } else {
            try c.encodeNil(forKey: .modulesToSave)
        }
        try c.encode(useRslora, forKey: .useRslora)
        try c.encode(taskType, forKey: .taskType)
        if let b = baseModelNameOrPath {
            try c.encode(b, forKey: .baseModelNameOrPath)
        } else {
            try c.encodeNil(forKey: .baseModelNameOrPath)
        }
        try c.encode(inferenceMode, forKey: .inferenceMode)
        try c.encode("none", forKey: .bias)
        try c.encode(false, forKey: .fanInFanOut)
        try c.encode(true, forKey: .initLoraWeights)
        try c.encode(false, forKey: .useDora)
        try c.encode(false, forKey: .loraBias)
        try c.encodeNil(forKey: .layersToTransform)
        try c.encodeNil(forKey: .layersPattern)
        try c.encodeNil(forKey: .revision)
        try c.encode([String: Int](), forKey: .rankPattern)
        try c.encode([String: Int](), forKey: .alphaPattern)
    }

    /// `adapter_config.json` text.
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}

/// The prefix PEFT puts before the base model's own names in saved adapters.
public let peftPrefix = "base_model.model."

extension Module {
    /// Attaches fresh LoRA adapters (A Kaiming-uniform, B zero: the model's output is unchanged) to every
    /// `Linear` whose dotted name the config targets, freezes every base parameter, and leaves the
    /// adapters and the parameters of `modulesToSave` trainable (as PEFT's `get_peft_model`).
    ///
    /// Works on any module tree: a language model (`q_proj`), a vision tower (`q_proj`, `v_proj`), a
    /// connector (`to_q`, `to_kv`), or a tree holding all three.
    /// - Parameters:
    ///   - seed: draws the A matrices (module by module, in tree order).
    /// - Returns: the names of the adapted modules.
    /// - Throws: `TensorError` naming the value when nothing matches, r is not positive, the dropout is
    ///   outside [0, 1), the target pattern is not a regular expression, or an adapter is already attached.
    @discardableResult
    public func attachLoRA(_ config: LoRAConfig, seed: UInt64 = 0) throws -> [String] {
        guard config.r > 0 else { throw TensorError("attach_lora", "r must be positive, got \(config.r)") }
        guard config.loraDropout >= 0, config.loraDropout < 1 else {
            throw TensorError("attach_lora", "lora_dropout must be in [0, 1), got \(config.loraDropout)")
        }
        if let p = config.targetPattern, (try? NSRegularExpression(pattern: "^(?:" + p + ")$")) == nil {
            throw TensorError("attach_lora", "target_modules \"\(p)\" is not a regular expression")
        }
        let targets = namedModules().compactMap { name, m -> (String, Linear)? in
            guard let lin = m as? Linear, config.targets(name) else { return nil }
            return (name, lin)
        }
        guard !targets.isEmpty else {
            throw TensorError(
                "attach_lora",
                "no Linear matches target modules \(config.targetPattern.map { [$0] } ?? config.targetModules)"
            )
        }
        if let already = targets.first(where: { $0.1.lora != nil }) {
            throw TensorError("attach_lora", "\(already.0) already has an adapter")
        }
        freeze()
        var g = RandomGenerator(seed: seed)
        for (_, lin) in targets {
            try lin.attachLoRA(
                rank: config.r, scale: config.scale, dropout: Float(config.loraDropout), generator: &g)
        }
        for (name, m) in namedModules() where config.saves(name) { m.unfreeze() }
        return targets.map(\.0)
    }

    /// Every projection that carries an adapter, by dotted name.
    public var loraModules: [(String, Linear)] {
        namedModules().compactMap { n, m in (m as? Linear).flatMap { $0.lora != nil ? (n, $0) : nil } }
    }

    /// The adapters' parameters only (`...lora_A.weight`, `...lora_B.weight`), whatever is frozen.
    public func loraParameters() -> [(String, Parameter)] {
        let adapters = Set(loraModules.flatMap { [ObjectIdentifier($0.1.lora!.a), ObjectIdentifier($0.1.lora!.b)] })
        return namedParameters().filter { adapters.contains(ObjectIdentifier($0.1)) }
    }

    /// Adds every adapter's `scale * B A` into its base weight (fp32; exact up to rounding).
    public func mergeLoRA() throws { for (_, l) in loraModules { try l.merge() } }

    /// Takes every merged adapter out of its base weight again.
    public func unmergeLoRA() throws { for (_, l) in loraModules { try l.unmerge() } }

    /// Merges and removes every adapter (PEFT `merge_and_unload`), leaving a plain model.
    public func mergeAndUnloadLoRA() throws {
        for (_, l) in loraModules {
            try l.merge()
            l.detachLoRA()
        }
    }

    /// Parameters and persistent buffers as `stateDict()` lists them, with every unmerged adapter's
    /// product added into its base weight and the adapters' own tensors left out: the tensors of the
    /// plain model the adapted one computes (what PEFT's `merge_and_unload` then `save_pretrained`
    /// writes). The model itself is not changed.
    public func mergedStateDict() throws -> [(String, Tensor)] {
        var effective: [ObjectIdentifier: Tensor] = [:]
        for (_, l) in loraModules { effective[ObjectIdentifier(l.weight)] = try l.effectiveWeight() }
        let adapterParameters = Set(loraParameters().map { ObjectIdentifier($0.1) })
        return namedParameters().compactMap { name, p in
            adapterParameters.contains(ObjectIdentifier(p))
                ? nil : (name, effective[ObjectIdentifier(p)] ?? p.data)
        } + namedBuffers(persistentOnly: true).map { ($0.0, $0.1.value) }
    }

    /// The parameters a saved adapter holds, under the model's own names (without PEFT's
    /// `base_model.model.` prefix): each adapter's `<module>.lora_A.weight` `[r, in]` and
    /// `<module>.lora_B.weight` `[out, r]`, in tree order, then the parameters of the modules in
    /// `modulesToSave`. What `loraStateDict` writes and what TensorFiles'
    /// `WeightLoader.loadLoRAAdapter` loads.
    public func loraSavedParameters(_ config: LoRAConfig) -> [(String, Parameter)] {
        var out: [(String, Parameter)] = []
        for (name, l) in loraModules {
            out.append((name + ".lora_A.weight", l.lora!.a))
            out.append((name + ".lora_B.weight", l.lora!.b))
        }
        let saved = namedModules().filter { config.saves($0.0) }.map(\.0)
        for (name, p) in namedParameters() where saved.contains(where: { name.hasPrefix($0 + ".") }) {
            out.append((name, p))
        }
        return out
    }

    /// The tensors of a saved adapter as PEFT writes `adapter_model.safetensors`:
    /// `base_model.model.<module>.lora_A.weight` `[r, in]`, `...lora_B.weight` `[out, r]`, and the
    /// parameters of the modules in `modulesToSave` under `base_model.model.<name>`. (Loading them back
    /// is TensorFiles' `WeightLoader.loadLoRAAdapter`, the one weight loader.)
    public func loraStateDict(_ config: LoRAConfig) -> [(String, Tensor)] {
        loraSavedParameters(config).map { (peftPrefix + $0.0, $0.1.data) }
    }
}

/// The low-rank pair of one LoRA adapter on a `Linear`, named as PEFT names it: `lora_A`
/// (`weight [r, in]`) and `lora_B` (`weight [out, r]`).
public final class LoRAAdapter {
    /// `lora_A.weight` `[r, in]`, Kaiming-uniform initialised as PEFT does (U(+-1/sqrt(in))).
    public let a: Parameter
    /// `lora_B.weight` `[out, r]`, zero initialised so a fresh adapter changes nothing.
    public let b: Parameter
    public let rank: Int
    /// `alpha / r` (or `alpha / sqrt(r)` with rank-stabilised LoRA).
    public let scale: Float
    /// Dropout on the adapter's input (training mode only); nil when the probability is 0.
    public let dropout: Dropout?

    /// One half as a module, so the tree names its weight `lora_A.weight` / `lora_B.weight`.
    final class Half: Module {
        let weight: Parameter
        init(_ w: Parameter) { weight = w }
        override var localParameters: [(String, Parameter)] { [("weight", weight)] }
    }
    let halves: (Half, Half)

    init(
        inFeatures: Int, outFeatures: Int, rank: Int, scale: Float, dropout: Float,
        generator: inout RandomGenerator
    ) {
        self.rank = rank
        self.scale = scale
        a = Parameter(
            Initializer.pytorchDefault(fanIn: inFeatures).make([rank, inFeatures], generator: &generator))
        b = Parameter(Tensor.zeros([outFeatures, rank]))
        self.dropout = dropout > 0 ? Dropout(dropout, seed: generator.seed &+ generator.offset) : nil
        halves = (Half(a), Half(b))
    }

    /// `scale * B A`, `[out, in]`: what merging adds to the base weight.
    public func delta() throws -> Tensor {
        try Tensor.matmul(b.data, a.data) * scale
    }
}
