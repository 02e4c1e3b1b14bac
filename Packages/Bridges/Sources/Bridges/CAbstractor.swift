// C-Abstractor (Honeybee, Cha et al., 2024): convolutional abstraction with timm RegNet bottleneck
// stages. Parameter names are Honeybee's projector `state_dict` (`pos_emb`, `net.0.b1.conv1.conv.weight`,
// ..., `readout.0.weight`); the blocks match timm's `RegStage`/`Bottleneck` (timm 1.0.31) built with
// act_layer SiLU and norm_layer LayerNorm2d, whose normalisation layers use eps 1e-5.

/// Configuration of a C-Abstractor (`CAbstractor`).
public struct CAbstractorConfig: Codable, Equatable, Sendable {
    /// Width of the vision features (`encoder_hidden_size`).
    public var visionDim: Int
    /// Width of the RegNet stages (`hidden_size`, 1024).
    public var hiddenSize: Int
    /// Width of the output tokens (`output_hidden_size`).
    public var llmDim: Int
    /// Bottleneck blocks per stage (3); 0 leaves only the pooling and the readout.
    public var depth: Int
    /// Linear layers of the readout (2: Linear, SiLU, Linear).
    public var mlpDepth: Int
    /// Output tokens M, a perfect square (64, 144, 256, 576).
    public var numQueries: Int
    /// The input patch grid (the position embedding has `inputGrid.count` entries, no class token).
    public var inputGrid: Grid
    /// Whether a learnable position embedding is added to the features (Honeybee: true).
    public var posEmb: Bool
    /// Squeeze-excitation width = round(seRatio * block input channels) (timm: 0.25).
    public var seRatio: Double
    /// Epsilon of the LayerNorm2d layers (timm's `LayerNormAct2d`: 1e-5).
    public var layerNormEps: Float
    /// HF `hidden_states` index the features come from (Honeybee: -1, the last layer).
    public var featureLevel: Int

    public init(
        visionDim: Int, hiddenSize: Int = 1024, llmDim: Int, depth: Int = 3, mlpDepth: Int = 2,
        numQueries: Int,
        inputGrid: Grid, posEmb: Bool = true, seRatio: Double = 0.25, layerNormEps: Float = 1e-5,
        featureLevel: Int = -1
    ) {
        self.visionDim = visionDim
        self.hiddenSize = hiddenSize
        self.llmDim = llmDim
        self.depth = depth
        self.mlpDepth = mlpDepth
        self.numQueries = numQueries
        self.inputGrid = inputGrid
        self.posEmb = posEmb
        self.seRatio = seRatio
        self.layerNormEps = layerNormEps
        self.featureLevel = featureLevel
    }

    /// Side of the pooled grid, sqrt(numQueries), or nil when numQueries is not a square.
    public var pooledSide: Int? {
        let s = Int(Double(numQueries).squareRoot().rounded())
        return s > 0 && s * s == numQueries ? s : nil
    }

    /// `numQueries`.
    /// - Throws: `TensorError` with both sizes when `grid` is not the configured input grid (the
    ///   position embedding fixes it).
    public func tokenCount(grid: Grid) throws -> Int {
        if posEmb && grid != inputGrid {
            throw TensorError(
                "CAbstractor",
                "features on a \(grid) grid (\(grid.count) patches) do not match the position embedding's \(inputGrid) grid (\(inputGrid.count) patches)"
            )
        }
        return numQueries
    }
}

/// timm's `ConvNormAct`: `conv` (no bias), `bn` (LayerNorm2d over channels), optional SiLU.
public final class ConvNormAct: Module {
    public let conv: Conv2d
    public let bn: LayerNorm2d
    public let applyActivation: Bool

    init(_ cin: Int, _ cout: Int, kernel: Int, groups: Int = 1, activation: Bool, eps: Float) throws {
        conv = try Conv2d(
            cin, cout, kernelSize: (kernel, kernel), padding: (kernel / 2, kernel / 2), groups: groups,
            bias: false)
        bn = LayerNorm2d(cout, eps: eps)
        applyActivation = activation
    }

    public override var localChildren: [(String, Module)] { [("conv", conv), ("bn", bn)] }

    /// `[N, Cin, H, W]` -> `[N, Cout, H, W]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try bn(conv(x))
        return applyActivation ? silu(y) : y
    }
}

/// timm's `SEModule`: spatial mean, `fc1` (1x1 conv with bias) to the reduced width, SiLU, `fc2` back,
/// sigmoid gate multiplied into the input.
public final class SqueezeExcitation: Module {
    public let fc1: Conv2d
    public let fc2: Conv2d

    init(channels: Int, reduced: Int) throws {
        fc1 = try Conv2d(channels, reduced, kernelSize: (1, 1))
        fc2 = try Conv2d(reduced, channels, kernelSize: (1, 1))
    }

    public override var localChildren: [(String, Module)] { [("fc1", fc1), ("fc2", fc2)] }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let s = try x.mean(axes: [2, 3], keepDim: true)
        return try x * fc2(silu(fc1(s))).sigmoid()
    }
}

/// timm's RegNet `Bottleneck` with bottle_ratio 1 and group_size 1: `conv1` 1x1 + LN2d + SiLU,
/// `conv2` 3x3 depthwise + LN2d + SiLU, `se`, `conv3` 1x1 + LN2d, plus the shortcut (the identity
/// when the widths match, else `downsample`: 1x1 conv + LN2d), then SiLU.
public final class RegNetBottleneck: Module {
    public let conv1: ConvNormAct
    public let conv2: ConvNormAct
    public let se: SqueezeExcitation
    public let conv3: ConvNormAct
    public let downsample: ConvNormAct?

    /// - Parameters:
    ///   - inChannels, outChannels: block widths; the bottleneck width equals `outChannels`.
    ///   - seRatio: squeeze width = round(seRatio * inChannels).
    /// - Throws: `TensorError` naming a width that is not positive.
    public init(inChannels: Int, outChannels: Int, seRatio: Double = 0.25, eps: Float = 1e-5) throws {
        conv1 = try ConvNormAct(inChannels, outChannels, kernel: 1, activation: true, eps: eps)
        conv2 = try ConvNormAct(
            outChannels, outChannels, kernel: 3, groups: outChannels, activation: true, eps: eps)
        // Python's round() rounds half to even.
        let reduced = Int((seRatio * Double(inChannels)).rounded(.toNearestOrEven))
        se = try SqueezeExcitation(channels: outChannels, reduced: max(reduced, 1))
        conv3 = try ConvNormAct(outChannels, outChannels, kernel: 1, activation: false, eps: eps)
        downsample =
            inChannels == outChannels
            ? nil : try ConvNormAct(inChannels, outChannels, kernel: 1, activation: false, eps: eps)
    }

    public override var localChildren: [(String, Module)] {
        [("conv1", conv1), ("conv2", conv2), ("se", se), ("conv3", conv3)]
            + (downsample.map { [("downsample", $0)] } ?? [])
    }

    /// `[N, Cin, H, W]` -> `[N, Cout, H, W]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try conv3(se(conv2(conv1(x))))
        let shortcut = try downsample.map { try $0(x) } ?? x
        return try silu(y + shortcut)
    }
}

/// timm's `RegStage` with stride 1: blocks `b1`, `b2`, ... (the first maps in -> out channels).
public final class RegNetStage: Module {
    public let blocks: [RegNetBottleneck]

    /// - Throws: `TensorError` naming a width that is not positive.
    public init(depth: Int, inChannels: Int, outChannels: Int, seRatio: Double = 0.25, eps: Float = 1e-5)
        throws
    {
        blocks = try (0..<depth).map {
            try RegNetBottleneck(
                inChannels: $0 == 0 ? inChannels : outChannels, outChannels: outChannels, seRatio: seRatio,
                eps: eps)
        }
    }

    public override var localChildren: [(String, Module)] {
        blocks.enumerated().map { ("b\($0.offset + 1)", $0.element) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try blocks.reduce(x) { try $1($0) } }
}

/// Honeybee's `net` (`nn.Sequential(s1, sampler, s2)`): children `0` and `2`; the pooling has no
/// parameters. With depth 0 it is the pooling alone.
final class CAbstractorNet: Module {
    let s1: RegNetStage?
    let s2: RegNetStage?
    init(s1: RegNetStage?, s2: RegNetStage?) {
        self.s1 = s1
        self.s2 = s2
    }
    override var localChildren: [(String, Module)] {
        guard let s1, let s2 else { return [] }
        return [("0", s1), ("2", s2)]
    }
}

/// The C-Abstractor: features plus `pos_emb`, reshaped to `[B, C, H, W]`, RegNet stage `net.0`,
/// adaptive average pooling to sqrt(M) x sqrt(M), stage `net.2`, flattened row-major to `[B, M, hidden]`,
/// then the readout MLP `readout.0` (hidden -> llmDim), (SiLU, `readout.2` llmDim -> llmDim), ...
public final class CAbstractor: Module, Connector {
    public let config: CAbstractorConfig
    public let posEmb: Parameter?
    public let s1: RegNetStage?
    public let s2: RegNetStage?
    let net: CAbstractorNet
    public let readout: [Linear]
    let readoutModule: ReadoutNames

    /// Initialised as Honeybee does: conv and linear weights N(0, 0.02), biases 0, norms (1, 0),
    /// `pos_emb` truncated normal with std 0.02.
    /// - Throws: `TensorError` when numQueries is not a perfect square or sizes are not positive.
    public init(_ config: CAbstractorConfig, seed: UInt64 = 0) throws {
        let op = "CAbstractor"
        guard config.pooledSide != nil else {
            throw TensorError(op, "numQueries \(config.numQueries) is not a perfect square")
        }
        guard config.visionDim > 0, config.hiddenSize > 0, config.llmDim > 0, config.depth >= 0,
            config.mlpDepth >= 1,
            config.inputGrid.height > 0, config.inputGrid.width > 0
        else {
            throw TensorError(
                op, "needs positive widths, depth >= 0, mlpDepth >= 1 and a non-empty grid, got \(config)")
        }
        self.config = config
        posEmb = config.posEmb ? Parameter(Tensor.zeros([1, config.inputGrid.count, config.visionDim])) : nil
        if config.depth > 0 {
            s1 = try RegNetStage(
                depth: config.depth, inChannels: config.visionDim, outChannels: config.hiddenSize,
                seRatio: config.seRatio,
                eps: config.layerNormEps)
            s2 = try RegNetStage(
                depth: config.depth, inChannels: config.hiddenSize, outChannels: config.hiddenSize,
                seRatio: config.seRatio,
                eps: config.layerNormEps)
        } else {
            (s1, s2) = (nil, nil)
        }
        net = CAbstractorNet(s1: s1, s2: s2)
        let readIn = config.depth > 0 ? config.hiddenSize : config.visionDim
        readout = (0..<config.mlpDepth).map { Linear($0 == 0 ? readIn : config.llmDim, config.llmDim) }
        readoutModule = ReadoutNames(readout)
        super.init()
        var g = RandomGenerator(seed: seed)
        for (name, p) in namedParameters() {
            if name == "pos_emb" {
                Initializer.truncatedNormal(std: 0.02).apply(to: p, generator: &g)
            } else if name.hasSuffix("weight") && p.shape.count >= 2 {
                Initializer.normal(std: 0.02).apply(to: p, generator: &g)
            } else if name.hasSuffix("bias") {
                p.data = Tensor.zeros(p.shape)
            } else {
                p.data = Tensor.ones(p.shape)
            }
        }
    }

    public override var localParameters: [(String, Parameter)] { posEmb.map { [("pos_emb", $0)] } ?? [] }
    public override var localChildren: [(String, Module)] {
        [("net", net), ("readout", readoutModule)]
    }
    public var configuration: ConnectorConfiguration { .cAbstractor(config) }

    /// - Parameter levels: one level `[B, H*W, visionDim]` on `config.inputGrid` (any grid when
    ///   `posEmb` is off).
    /// - Returns: `[B, numQueries, llmDim]`
    public func callAsFunction(_ levels: [FeatureLevel]) throws -> Tensor {
        _ = try checkLevels(
            levels, expected: 1, visionDim: config.visionDim, grid: config.posEmb ? config.inputGrid : nil,
            op: "CAbstractor")
        var x = levels[0].features
        if let posEmb { x = try x + posEmb.value }
        var map = try tokensToMap(x, grid: levels[0].grid)
        if let s1 { map = try s1(map) }
        let side = config.pooledSide!
        map = try adaptiveAvgPool2d(map, outputSize: (side, side))
        if let s2 { map = try s2(map) }
        var y = try readout[0](mapToTokens(map))
        for layer in readout.dropFirst() { y = try layer(silu(y)) }
        return y
    }
}

/// Children named `0`, `2`, `4`, ... (an `nn.Sequential` of Linear layers with activations between).
final class ReadoutNames: Module {
    let layers: [Linear]
    init(_ layers: [Linear]) { self.layers = layers }
    override var localChildren: [(String, Module)] {
        layers.enumerated().map { (String(2 * $0.offset), $0.element) }
    }
}
