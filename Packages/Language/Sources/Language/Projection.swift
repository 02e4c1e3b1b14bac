import Foundation
import Layers

/// The low-rank pair of one LoRA adapter, named as PEFT names it: `lora_A` (`weight [r, in]`) and
/// `lora_B` (`weight [out, r]`).
public final class LoRAWeights {
    /// `lora_A.weight` `[r, in]`, Kaiming-uniform initialised as PEFT does.
    public let a: Parameter
    /// `lora_B.weight` `[out, r]`, zero initialised so a fresh adapter changes nothing.
    public let b: Parameter
    public let rank: Int
    /// `alpha / r` (or `alpha / sqrt(r)` with rank-stabilised LoRA).
    public let scale: Float
    /// Dropout on the adapter's input (training mode only).
    public let dropout: Dropout?

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

/// `y = x W^T + b` with the parameter names of PyTorch `nn.Linear` (`weight [out, in]`, `bias`), plus
/// an optional LoRA adapter (children `lora_A`, `lora_B`, as PEFT names them) that can be merged into
/// `weight` and taken out again.
///
/// Every Llama projection is one of these, so LoRA attaches in place without renaming the base
/// weights: `model.layers.0.self_attn.q_proj.weight` stays as HF writes it, and the adapter adds
/// `model.layers.0.self_attn.q_proj.lora_A.weight`.
public final class LlamaLinear: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?
    /// The attached adapter, if any.
    public internal(set) var lora: LoRAWeights?
    /// Whether the adapter's product currently sits inside `weight`.
    public internal(set) var isMerged = false
    /// Standard deviation of the normal initialisation (HF `initializer_range`).
    public let initStd: Float

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = false, initStd: Float = 0.02) {
        self.initStd = initStd
        weight = Parameter(Tensor.zeros([outFeatures, inFeatures]))
        self.bias = bias ? Parameter(Tensor.zeros([outFeatures])) : nil
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public override var localParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public override var localChildren: [(String, Module)] {
        guard let lora else { return [] }
        return [("lora_A", lora.halves.0), ("lora_B", lora.halves.1)]
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        weight.data = Tensor.normal(weight.shape, std: initStd, generator: &generator)
        bias?.data = Tensor.zeros(bias!.shape)
    }

    /// Attaches a fresh adapter (A Kaiming-uniform, B zero).
    func attach(rank: Int, scale: Float, dropout: Float, generator: inout RandomGenerator) {
        lora = LoRAWeights(
            inFeatures: inFeatures, outFeatures: outFeatures, rank: rank, scale: scale, dropout: dropout,
            generator: &generator)
        isMerged = false
    }

    /// Adds `scale * B A` into `weight` (no-op when merged already or without an adapter).
    public func merge() throws {
        guard let lora, !isMerged else { return }
        let d = try lora.delta()
        try weight.update { try $0.add(d) }
        isMerged = true
    }

    /// Subtracts the adapter's product from `weight` again.
    public func unmerge() throws {
        guard let lora, isMerged else { return }
        let d = try lora.delta()
        try weight.update { try $0.add(d, scaledBy: -1) }
        isMerged = false
    }

    /// - Parameter x: `[..., in]`
    /// - Returns: `[..., out]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try linear(x, weight: weight.value, bias: bias?.value)
        guard let lora, !isMerged else { return y }
        var h = x
        if let d = lora.dropout, isTraining { h = try d(h) }
        let low = try linear(linear(h, weight: lora.a.value), weight: lora.b.value)
        return try y + low * lora.scale
    }
}
