import Layers

/// A CLIP vision tower mirroring HF `CLIPVisionModel`: parameter names are HF's state-dict keys
/// (`vision_model.embeddings.patch_embedding.weight`, ..., see `CLIPVisionTransformer`), the config is
/// HF's `config.json`, and the forward matches HF's numerically.
///
/// Beyond HF: any input size runs (the position grid is resampled by `interpolation` when the patch
/// grid differs from the stored one; HF needs `interpolate_pos_encoding=True`), only the layers up to
/// the deepest requested hidden state run, and a frozen tower records no autodiff graph.
///
/// ```swift
/// let (tower, report) = try CLIPVisionModel.fromPretrained(directory: "clip-vit-large-patch14-336")
/// tower.isFrozen = true
/// let f = try tower.features(pixels)          // penultimate layer, class token dropped
/// f.levels[0].shape                            // [B, 576, 1024]; f.grid == (24, 24)
/// ```
public final class CLIPVisionModel: Module {
    /// The transformer (child `vision_model`).
    public let visionModel: CLIPVisionTransformer
    /// How position embeddings are resampled for a patch grid other than the stored one
    /// (default: HF's rule).
    public var interpolation: PositionInterpolation = .huggingFace
    /// The hidden states `features` returns, as HF `hidden_states` indices; negative values count
    /// from the end (-1 = last layer, -2 = penultimate, LLaVA's default). Default `[-2]`.
    public var featureLayers: [Int] = [-2]
    /// Whether `features` keeps the class token (default false: patches only, as LLaVA and
    /// Chain-of-Sight use).
    public var keepClassToken = false
    /// Recompute each encoder layer during backward instead of keeping its activations (HF
    /// `gradient_checkpointing_enable`); layers whose parameters are all frozen and whose input is not
    /// recorded run plainly. Gradients are those of the plain forward (the layers are deterministic).
    public var gradientCheckpointing = false

    /// A randomly initialised tower for `config`.
    /// - Throws: `VisionError` for an invalid config.
    public init(config: CLIPVisionConfig, seed: UInt64 = 0) throws {
        visionModel = try CLIPVisionTransformer(config: config, seed: seed)
    }

    public override var localChildren: [(String, Module)] { [("vision_model", visionModel)] }

    /// The config (its `imageSize` follows `resizePositionEmbeddings`).
    public var config: CLIPVisionConfig { visionModel.config }
    /// Number of encoder layers.
    public var layerCount: Int { visionModel.encoder.layers.count }

    /// Frozen: every parameter is non-trainable and the forward runs without recording (no graph, no
    /// saved activations, even for an input that is being recorded). Setting it freezes or unfreezes
    /// every parameter.
    public var isFrozen: Bool {
        get { allParameters { !$0.isTrainable } }
        set { freeze(prefix: "", newValue) }
    }

    /// Resolves a possibly negative HF `hidden_states` index to `0...layerCount`.
    /// - Throws: `VisionError` when it is out of range.
    public func resolveLayer(_ index: Int) throws -> Int {
        let n = layerCount
        let i = index < 0 ? index + n + 1 : index
        guard i >= 0 && i <= n else {
            throw VisionError(
                "CLIPVisionModel",
                "hidden state \(index) is out of range for \(n) layers (valid: \(-(n + 1))...\(n))")
        }
        return i
    }

    /// Runs the tower as far as needed for the requested outputs.
    ///
    /// - Parameters:
    ///   - pixels: `[B, 3, H, W]`, normalised; any size of at least one patch.
    ///   - hiddenStates: HF `hidden_states` indices to return (negative counts from the end). Layers after
    ///     the deepest one requested are not run.
    ///   - pooled: also return `post_layernorm` of the last layer's class token (runs every layer).
    /// - Returns: the requested hidden states `[B, 1 + h*w, C]`, the pooled output `[B, C]` when asked, and the grid.
    /// - Throws: `VisionError` for a bad input shape or index; `TensorError` from the ops.
    public func forward(_ pixels: Tensor, hiddenStates: [Int], pooled: Bool = false) throws
        -> CLIPVisionOutput
    {
        if isFrozen { return try noGrad { try run(pixels, hiddenStates: hiddenStates, pooled: pooled) } }
        return try run(pixels, hiddenStates: hiddenStates, pooled: pooled)
    }

    private func run(_ pixels: Tensor, hiddenStates: [Int], pooled: Bool) throws -> CLIPVisionOutput {
        let wanted = Set(try hiddenStates.map(resolveLayer))
        let last = pooled ? layerCount : (wanted.max() ?? 0)
        let vm = visionModel
        let (embedded, grid) = try vm.embeddings(pixels, method: interpolation)
        var x = try vm.preLayerNorm(embedded)
        var out: [Int: Tensor] = [:]
        if wanted.contains(0) { out[0] = x }
        if last > 0 {
            let recompute = gradientCheckpointing && GradMode.isEnabled
            for i in 1...last {
                let layer = vm.encoder.layers[i - 1]
                if recompute && (x.requiresGradient || layer.trainableParameters().count > 0) {
                    x = try checkpoint([x]) { try layer($0[0]) }
                } else {
                    x = try layer(x)
                }
                if wanted.contains(i) { out[i] = x }
            }
        }
        var pooledOut: Tensor?
        if pooled {
            let cls = try x.narrow(axis: 1, start: 0, length: 1).squeezed(1)
            pooledOut = try vm.postLayerNorm(cls)
        }
        return CLIPVisionOutput(hiddenStates: out, pooled: pooledOut, grid: grid, layersRun: last)
    }

    /// HF's default outputs: the last hidden state and the pooled output.
    /// - Parameter pixels: `[B, 3, H, W]`
    /// - Returns: `hiddenStates[layerCount]` `[B, 1 + h*w, C]` and `pooled` `[B, C]`.
    public func callAsFunction(_ pixels: Tensor) throws -> CLIPVisionOutput {
        try forward(pixels, hiddenStates: [layerCount], pooled: true)
    }

    /// Patch features of `layers` (default `featureLayers`), the class token dropped unless
    /// `keepClassToken`.
    /// - Parameter pixels: `[B, 3, H, W]`
    /// - Returns: one `[B, h*w, C]` tensor per layer and the grid (h, w).
    public func features(_ pixels: Tensor, layers: [Int]? = nil) throws -> VisionFeatures {
        let requested = layers ?? featureLayers
        guard !requested.isEmpty else {
            throw VisionError("CLIPVisionModel.features", "no feature layers requested")
        }
        let resolved = try requested.map(resolveLayer)
        let o = try forward(pixels, hiddenStates: resolved)
        let levels = try resolved.map { i -> Tensor in
            let h = o.hiddenStates[i]!
            return keepClassToken ? h : try h.narrow(axis: 1, start: 1, length: h.shape[1] - 1)
        }
        return VisionFeatures(levels: levels, grid: o.grid, layers: resolved)
    }

    /// Rewrites the stored position embeddings for a new (square) training resolution, once: the
    /// table is resampled to the grid `imageSize / patchSize` by `method` (default: `interpolation`),
    /// and `config.imageSize` is updated, so that the tower then runs natively at the new size and
    /// saves an HF-loadable table (MM1's high-resolution fine-tuning starts this way).
    /// - Throws: `VisionError` when `imageSize` is smaller than a patch.
    public func resizePositionEmbeddings(imageSize: Int, method: PositionInterpolation? = nil) throws {
        let p = config.patchSize
        guard imageSize >= p else {
            throw VisionError(
                "resizePositionEmbeddings", "image size \(imageSize) is smaller than the patch size \(p)")
        }
        let g = imageSize / p
        let weight = visionModel.embeddings.positionEmbedding.weight
        let resized = try noGrad {
            try interpolatePositionEmbedding(weight.data, grid: (g, g), method: method ?? interpolation)
        }
        weight.data = resized
        visionModel.setImageSize(imageSize)
    }
}
