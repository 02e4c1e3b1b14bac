/// Layer normalisation over the trailing `normalizedShape` (PyTorch `nn.LayerNorm`): `weight`, `bias`.
public final class LayerNorm: Module, UnaryLayer {
    public let normalizedShape: [Int]
    public let eps: Float
    public let weight: Parameter?
    public let bias: Parameter?

    public init(
        _ normalizedShape: [Int], eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true
    ) {
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = elementwiseAffine ? Parameter(Tensor.ones(normalizedShape)) : nil
        self.bias = elementwiseAffine && bias ? Parameter(Tensor.zeros(normalizedShape)) : nil
    }

    public convenience init(_ dim: Int, eps: Float = 1e-5) { self.init([dim], eps: eps) }

    public override var localParameters: [(String, Parameter)] {
        (weight.map { [("weight", $0)] } ?? []) + (bias.map { [("bias", $0)] } ?? [])
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        weight?.data = Tensor.ones(normalizedShape)
        bias?.data = Tensor.zeros(normalizedShape)
    }

    /// - Parameter x: `[..., normalizedShape...]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layerNorm(x, normalizedShape: normalizedShape, weight: weight?.value, bias: bias?.value, eps: eps)
    }
}

/// Layer normalisation over the channel dimension of NCHW feature maps (ConvNeXt/Honeybee
/// `LayerNorm2d`): `weight` `[C]`, `bias` `[C]`.
public final class LayerNorm2d: Module, UnaryLayer {
    public let eps: Float
    public let weight: Parameter
    public let bias: Parameter

    public init(_ channels: Int, eps: Float = 1e-6) {
        self.eps = eps
        weight = Parameter(Tensor.ones([channels]))
        bias = Parameter(Tensor.zeros([channels]))
    }

    public override var localParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        weight.data = Tensor.ones(weight.shape)
        bias.data = Tensor.zeros(bias.shape)
    }

    /// - Parameter x: `[N, C, H, W]`
    /// - Returns: `[N, C, H, W]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError("LayerNorm2d", "expects [N, C, H, W], got \(x.shape)") }
        let nhwc = try x.permuted([0, 2, 3, 1])
        let y = try layerNorm(
            nhwc, normalizedShape: [x.shape[1]], weight: weight.value, bias: bias.value, eps: eps)
        return try y.permuted([0, 3, 1, 2])
    }
}

/// Root-mean-square normalisation over the last dimension (HF `LlamaRMSNorm`): `weight` only.
public final class RMSNorm: Module, UnaryLayer {
    public let eps: Float
    public let weight: Parameter

    public init(_ dim: Int, eps: Float = 1e-6) {
        self.eps = eps
        weight = Parameter(Tensor.ones([dim]))
    }

    public override var localParameters: [(String, Parameter)] { [("weight", weight)] }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        weight.data = Tensor.ones(weight.shape)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try rmsNorm(x, weight: weight.value, eps: eps)
    }
}

/// Group normalisation over NC* inputs (PyTorch `nn.GroupNorm`): `weight` `[C]`, `bias` `[C]`.
public final class GroupNorm: Module, UnaryLayer {
    public let groups: Int
    public let eps: Float
    public let weight: Parameter
    public let bias: Parameter

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        self.groups = groups
        self.eps = eps
        weight = Parameter(Tensor.ones([channels]))
        bias = Parameter(Tensor.zeros([channels]))
    }

    public override var localParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        weight.data = Tensor.ones(weight.shape)
        bias.data = Tensor.zeros(bias.shape)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try groupNorm(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps)
    }
}

/// Batch normalisation over NCHW (PyTorch `nn.BatchNorm2d`): parameters `weight`, `bias`; persistent
/// buffers `running_mean`, `running_var`, `num_batches_tracked`. Training mode uses batch statistics
/// and updates the running ones; evaluation mode uses the running ones.
public final class BatchNorm2d: Module, UnaryLayer {
    public let eps: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Buffer
    public let runningVar: Buffer
    public let numBatchesTracked: Buffer

    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.eps = eps
        self.momentum = momentum
        weight = Parameter(Tensor.ones([channels]))
        bias = Parameter(Tensor.zeros([channels]))
        runningMean = Buffer(Tensor.zeros([channels]))
        runningVar = Buffer(Tensor.ones([channels]))
        numBatchesTracked = Buffer(Tensor(0))
    }

    public override var localParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    public override var localBuffers: [(String, Buffer)] {
        [
            ("running_mean", runningMean), ("running_var", runningVar),
            ("num_batches_tracked", numBatchesTracked),
        ]
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        weight.data = Tensor.ones(weight.shape)
        bias.data = Tensor.zeros(bias.shape)
    }

    /// - Parameter x: `[N, C, H, W]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var mean: Tensor? = runningMean.value
        var variance: Tensor? = runningVar.value
        let y = try batchNorm(
            x, runningMean: &mean, runningVar: &variance, weight: weight.value, bias: bias.value,
            training: isTraining,
            momentum: momentum, eps: eps)
        if isTraining {
            runningMean.value = mean!
            runningVar.value = variance!
            numBatchesTracked.value = numBatchesTracked.value + 1
        }
        return y
    }
}
