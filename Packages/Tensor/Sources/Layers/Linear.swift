/// `y = x W^T + b` (PyTorch `nn.Linear`): parameters `weight` `[out, in]` and optional `bias` `[out]`.
public class Linear: Module, UnaryLayer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?

    /// A layer initialised as PyTorch does (U(+-1/sqrt(in)) for weight and bias), from `seed`.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, seed: UInt64 = 0) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(Tensor.zeros([outFeatures, inFeatures]))
        self.bias = bias ? Parameter(Tensor.zeros([outFeatures])) : nil
        super.init()
        var g = RandomGenerator(seed: seed)
        resetLocalParameters(generator: &g)
    }

    public override var localParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        let initializer = Initializer.pytorchDefault(fanIn: inFeatures)
        initializer.apply(to: weight, generator: &generator)
        if let bias { initializer.apply(to: bias, generator: &generator) }
    }

    /// - Parameter x: `[..., in]`
    /// - Returns: `[..., out]`
    open func callAsFunction(_ x: Tensor) throws -> Tensor {
        try linear(x, weight: weight.value, bias: bias?.value)
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

/// Embedding table (PyTorch `nn.Embedding`): `weight` `[numEmbeddings, dim]`, N(0, 1) initialised.
public final class Embedding: Module {
    public let weight: Parameter

    public init(_ numEmbeddings: Int, _ dim: Int, seed: UInt64 = 0) {
        weight = Parameter(Tensor.zeros([numEmbeddings, dim]))
        super.init()
        var g = RandomGenerator(seed: seed)
        resetLocalParameters(generator: &g)
    }

    public override var localParameters: [(String, Parameter)] { [("weight", weight)] }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        Initializer.normal(std: 1).apply(to: weight, generator: &generator)
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
