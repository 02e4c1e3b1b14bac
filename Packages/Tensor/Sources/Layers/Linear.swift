/// `y = x W^T + b` (PyTorch `nn.Linear`): parameters `weight` `[out, in]` and optional `bias` `[out]`,
/// plus an optional LoRA adapter.
///
/// The adapter is the one every model in the tree uses (Llama projections, the CLIP tower, the
/// connectors): children `lora_A` (`weight [r, in]`) and `lora_B` (`weight [out, r]`) as PEFT names
/// them, so a base key such as `model.layers.0.self_attn.q_proj.weight` keeps its HF name and the
/// adapter adds `model.layers.0.self_attn.q_proj.lora_A.weight`. With an adapter the layer computes
/// `x W^T + b + scale * B (A dropout(x))`; `merge()` folds `scale * B A` into `weight` and `unmerge()`
/// takes it out again. Attach adapters by name pattern with `Module.attachLoRA(_:seed:)`.
public class Linear: Module, UnaryLayer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// How `resetLocalParameters` draws `weight`; nil is PyTorch's default U(+-1/sqrt(in)). A model
    /// with its own scheme sets it (HF Llama: N(0, 0.02)).
    public var weightInitializer: Initializer?
    /// How `resetLocalParameters` draws `bias`; nil is PyTorch's default U(+-1/sqrt(in)).
    public var biasInitializer: Initializer?
    /// The attached adapter, if any.
    public internal(set) var lora: LoRAAdapter?
    /// Whether the adapter's product currently sits inside `weight`.
    public internal(set) var isMerged = false

    /// A layer initialised as PyTorch does (U(+-1/sqrt(in)) for weight and bias), from `seed`.
    /// - Parameter seed: nil leaves the parameters zero, for an owner that re-initialises the whole
    ///   tree (`Module.resetParameters`) or loads weights, so a large model is not drawn twice.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, seed: UInt64? = 0) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(Tensor.zeros([outFeatures, inFeatures]))
        self.bias = bias ? Parameter(Tensor.zeros([outFeatures])) : nil
        super.init()
        if let seed {
            var g = RandomGenerator(seed: seed)
            resetLocalParameters(generator: &g)
        }
    }

    public override var localParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public override var localChildren: [(String, Module)] {
        guard let lora else { return [] }
        return [("lora_A", lora.halves.0), ("lora_B", lora.halves.1)]
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        let initializer = Initializer.pytorchDefault(fanIn: inFeatures)
        (weightInitializer ?? initializer).apply(to: weight, generator: &generator)
        if let bias { (biasInitializer ?? initializer).apply(to: bias, generator: &generator) }
    }

    // MARK: LoRA

    /// Attaches a fresh adapter initialised as PEFT does (`lora_A` Kaiming-uniform, i.e.
    /// U(+-1/sqrt(in)); `lora_B` zero), so the layer's output is unchanged until B is trained.
    /// - Parameters:
    ///   - rank: r, at least 1.
    ///   - scale: the adapter's multiplier (`alpha / r`, or `alpha / sqrt(r)` rank-stabilised).
    ///   - dropout: dropout probability on the adapter's input in training mode, in [0, 1).
    ///   - generator: draws `lora_A`, then seeds the dropout.
    /// - Throws: `TensorError` when an adapter is attached already or `rank`/`dropout` are out of range.
    public func attachLoRA(rank: Int, scale: Float, dropout: Float = 0, generator: inout RandomGenerator) throws {
        guard lora == nil else { throw TensorError("attach_lora", "the layer already has an adapter") }
        guard rank > 0 else { throw TensorError("attach_lora", "rank must be positive, got \(rank)") }
        guard dropout >= 0, dropout < 1 else {
            throw TensorError("attach_lora", "dropout must be in [0, 1), got \(dropout)")
        }
        lora = LoRAAdapter(
            inFeatures: inFeatures, outFeatures: outFeatures, rank: rank, scale: scale, dropout: dropout,
            generator: &generator)
        isMerged = false
    }

    /// Removes the adapter. A merged adapter stays inside `weight` (PEFT `merge_and_unload` is
    /// `merge()` then this); an unmerged one is discarded.
    public func detachLoRA() {
        lora = nil
        isMerged = false
    }

    /// Adds `scale * B A` into `weight` (no-op when merged already or without an adapter).
    public func merge() throws {
        guard let lora, !isMerged else { return }
        let d = try lora.delta()
        try weight.update { try $0.add(d) }
        isMerged = true
    }

    /// Subtracts the adapter's product from `weight` again (no-op when not merged).
    public func unmerge() throws {
        guard let lora, isMerged else { return }
        let d = try lora.delta()
        try weight.update { try $0.add(d, scaledBy: -1) }
        isMerged = false
    }

    /// The weight the layer effectively applies, `[out, in]`: `weight` plus an unmerged adapter's
    /// `scale * B A` (what an HF checkpoint of the adapted model stores).
    public func effectiveWeight() throws -> Tensor {
        var w = weight.data
        if let lora, !isMerged { try w.add(lora.delta()) }
        return w
    }

    /// - Parameter x: `[..., in]`
    /// - Returns: `[..., out]`
    open func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try linear(x, weight: weight.value, bias: bias?.value)
        guard let lora, !isMerged else { return y }
        var h = x
        if let d = lora.dropout, isTraining { h = try d(h) }
        let low = try linear(linear(h, weight: lora.a.value), weight: lora.b.value)
        return try y + low * lora.scale
    }
}

/// Two linear layers with an activation between them (HF CLIP `fc1`/`fc2` with quick GELU by default).
public final class MLP: Module, UnaryLayer {
    public let fc1: Linear
    public let fc2: Linear
    public let activation: (Tensor) throws -> Tensor
    let names: (String, String)

    /// - Parameters:
    ///   - names: the two children's names (`fc1`, `fc2` as HF CLIP; Honeybee's readout uses `0`, `2`).
    public init(
        _ inFeatures: Int, hidden: Int, out: Int? = nil, bias: Bool = true,
        activation: @escaping (Tensor) throws -> Tensor = { quickGelu($0) },
        names: (String, String) = ("fc1", "fc2"),
        seed: UInt64 = 0
    ) {
        fc1 = Linear(inFeatures, hidden, bias: bias, seed: seed)
        fc2 = Linear(hidden, out ?? inFeatures, bias: bias, seed: seed &+ 1)
        self.activation = activation
        self.names = names
    }

    public override var localChildren: [(String, Module)] { [(names.0, fc1), (names.1, fc2)] }

    /// - Parameter x: `[..., in]`
    /// - Returns: `[..., out]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try fc2(activation(fc1(x)))
    }
}

/// Embedding table (PyTorch `nn.Embedding`): `weight` `[numEmbeddings, dim]`, N(0, 1) initialised
/// (HF Llama's `embed_tokens` sets `initializer` to N(0, 0.02)).
public final class Embedding: Module {
    public let weight: Parameter
    /// How `resetLocalParameters` draws `weight`: N(0, 1) as PyTorch, unless a model sets its own.
    public var initializer: Initializer = .normal(std: 1)

    /// - Parameter seed: draws the table; nil leaves it zero for an owner that re-initialises or loads.
    public init(_ numEmbeddings: Int, _ dim: Int, seed: UInt64? = 0) {
        weight = Parameter(Tensor.zeros([numEmbeddings, dim]))
        super.init()
        if let seed {
            var g = RandomGenerator(seed: seed)
            resetLocalParameters(generator: &g)
        }
    }

    public override var localParameters: [(String, Parameter)] { [("weight", weight)] }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        initializer.apply(to: weight, generator: &generator)
    }

    /// - Parameter ids: any shape of token ids in `[0, numEmbeddings)`
    /// - Returns: `[ids.shape..., dim]`
    /// - Throws: `TensorError` naming the position of an out-of-range id.
    public func callAsFunction(_ ids: IndexTensor) throws -> Tensor {
        try embedding(ids, weight: weight.value)
    }
}

/// Zeroes elements with probability `p` in training mode and scales the rest by 1/(1-p)
/// (PyTorch `nn.Dropout`); the identity in evaluation mode. Its generator is seeded and advances with
/// each call, so a run is reproducible.
public final class Dropout: Module, UnaryLayer {
    public let p: Float
    public var generator: RandomGenerator

    public init(_ p: Float, seed: UInt64 = 0) {
        self.p = p
        generator = RandomGenerator(seed: seed)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard isTraining, p > 0 else { return x }
        return try dropout(x, p: p, training: true, generator: &generator)
    }
}
