/// 2-D convolution over NCHW (PyTorch `nn.Conv2d`): `weight` `[out, in/groups, kH, kW]`, `bias` `[out]`.
public final class Conv2d: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let dilation: (Int, Int)
    public let groups: Int

    /// - Throws: `TensorError` naming the value when a channel count, kernel size, stride, dilation or
    ///   group count is not positive, a padding is negative, or `groups` does not divide both channel counts.
    public init(
        _ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
        padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true,
        seed: UInt64 = 0
    ) throws {
        let op = "Conv2d"
        for (name, value) in [
            ("inChannels", inChannels), ("outChannels", outChannels), ("kernelSize.0", kernelSize.0),
            ("kernelSize.1", kernelSize.1), ("stride.0", stride.0), ("stride.1", stride.1),
            ("dilation.0", dilation.0), ("dilation.1", dilation.1), ("groups", groups),
        ] where value <= 0 {
            throw TensorError(op, "\(name) must be positive, got \(value)")
        }
        guard padding.0 >= 0, padding.1 >= 0 else {
            throw TensorError(op, "padding must not be negative, got \(padding)")
        }
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw TensorError(
                op, "groups \(groups) must divide inChannels \(inChannels) and outChannels \(outChannels)")
        }
        weight = Parameter(Tensor.zeros([outChannels, inChannels / groups, kernelSize.0, kernelSize.1]))
        self.bias = bias ? Parameter(Tensor.zeros([outChannels])) : nil
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        super.init()
        var g = RandomGenerator(seed: seed)
        resetLocalParameters(generator: &g)
    }

    public override var localParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        let s = weight.shape
        let initializer = Initializer.pytorchDefault(fanIn: s[1] * s[2] * s[3])
        initializer.apply(to: weight, generator: &generator)
        if let bias { initializer.apply(to: bias, generator: &generator) }
    }

    /// - Parameter x: `[N, in, H, W]`
    /// - Returns: `[N, out, Ho, Wo]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv2d(
            x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding, dilation: dilation,
            groups: groups)
    }
}
