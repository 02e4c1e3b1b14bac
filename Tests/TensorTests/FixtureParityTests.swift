import Foundation
import SightlineTestSupport
import Tensor
import Testing

// Parity with PyTorch: forward values (and gradients of sum(out * r)) of the Tensor ops against the
// fixtures written by scripts/make_fixtures.py (PyTorch, float64 references stored at float32
// precision). Relative error is max|ours - ref| / max|ref| per tensor.
//
// Every comparison runs twice: on the CPU backend (the fast kernels) and on the reference backend
// (the plain-loop oracle the fast kernels are tested against), so both are tied to PyTorch.
//
// Tolerances: forward <= 1e-5 relative for every op, and gradients <= 1e-5 relative as well.
// Measured errors are far below that (about 1e-7 to 2e-6, the same size as PyTorch's own float32
// error against the float64 reference, which each failure message prints for comparison). Set
// SIGHTLINE_PARITY_VERBOSE=1 to print every measured error.

/// Forward tolerance (relative) for every op.
let parityForwardTolerance = 1e-5

private let verbose = ProcessInfo.processInfo.environment["SIGHTLINE_PARITY_VERBOSE"] != nil

/// The backends every parity test runs on.
let parityBackends: [(name: String, backend: any Backend)] = [
    ("cpu", CPUBackend.shared), ("reference", ReferenceBackend.shared),
]

/// Runs `body` once per backend in `parityBackends`, passing the backend's name.
func forEachParityBackend(_ body: (String) throws -> Void) throws {
    for (name, backend) in parityBackends { try withBackend(backend) { try body(name) } }
}

/// The name of the backend ops currently dispatch to, for messages.
private var currentBackendName: String {
    Backends.current is ReferenceBackend
        ? "reference" : Backends.current is CPUBackend ? "cpu" : "\(type(of: Backends.current))"
}

/// Compares `ours` with the fixture tensor `key`: same shape, relative error within `tol`. Returns the
/// measured error.
@discardableResult
func expectParity(
    _ ours: Tensor, _ fx: Fixture, _ key: String, tol: Double = parityForwardTolerance,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Double {
    let ref = try fx.tensor(key)
    #expect(
        ours.shape == ref.shape, "\(fx.name).\(key): shape \(ours.shape) vs PyTorch \(ref.shape)",
        sourceLocation: sourceLocation)
    guard ours.shape == ref.shape else { return .infinity }
    let err = relativeError(ours.scalars, ref.scalars)
    let torch32 = fx.torchFloat32Error[key].map { String(format: "%.2e", $0) } ?? "-"
    let backend = currentBackendName
    if verbose {
        print(
            "parity \(fx.name).\(key) [\(backend)]: relative error \(String(format: "%.3e", err)) (torch float32: \(torch32))"
        )
    }
    #expect(
        err <= tol,
        "\(fx.name).\(key) [\(backend)]: relative error \(String(format: "%.3e", err)) > \(String(format: "%.0e", tol)) (PyTorch float32 itself: \(torch32))",
        sourceLocation: sourceLocation)
    return err
}

/// Checks `f(inputs)` against the fixture's `out` (and `outputKeys` beyond it when `f` returns
/// several), then the gradients of `sum(out * r)` with respect to `inputs` against `grad_<name>`.
/// Every gradient the fixture stores must be one of `inputs`' (a fixture's gradient that no input
/// names fails the test instead of going unchecked), and a fixture with gradients must have `r`.
@discardableResult
func checkParity(
    _ fx: Fixture, inputs names: [String], gradTol: Double = parityForwardTolerance,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ f: ([Tensor]) throws -> Tensor
) throws -> (forward: Double, gradient: Double) {
    let inputs = try names.map { try fx.tensor($0) }
    let claimed = Set(fx.tensors.keys.filter { $0.hasPrefix("grad_") })
    let unchecked = claimed.subtracting(names.map { "grad_" + $0 })
    #expect(
        unchecked.isEmpty, "\(fx.name) stores \(unchecked.sorted()) but the test does not differentiate those inputs",
        sourceLocation: sourceLocation)
    #expect(
        claimed.isEmpty || fx.tensors["r"] != nil, "\(fx.name) stores gradients but no r",
        sourceLocation: sourceLocation)
    var fwd = 0.0, gradErr = 0.0
    try forEachParityBackend { _ in
        let y = try noGrad { try f(inputs) }
        fwd = max(fwd, try expectParity(y, fx, "out", sourceLocation: sourceLocation))
        guard let r = fx.tensors["r"] else { return }
        let grads = try gradient(of: { xs in try (f(xs) * r).sum() }, at: inputs)
        for (name, g) in zip(names, grads) where fx.tensors["grad_" + name] != nil {
            gradErr = max(
                gradErr, try expectParity(g, fx, "grad_" + name, tol: gradTol, sourceLocation: sourceLocation)
            )
        }
    }
    return (fwd, gradErr)
}

// MARK: - Activations and the softmax family

@Suite struct ParityActivations {
    @Test(arguments: [
        "act_gelu", "act_gelu_tanh", "act_quick_gelu", "act_silu", "act_softplus", "act_softplus_beta2_t3",
    ])
    func activation(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let f: (Tensor) throws -> Tensor
        switch fx.op {
        case "gelu": f = { gelu($0) }
        case "gelu_tanh": f = { gelu($0, approximate: true) }
        case "quick_gelu": f = { quickGelu($0) }
        case "silu": f = { silu($0) }
        case "softplus":
            let beta = Float(try fx.double("beta")), threshold = Float(try fx.double("threshold"))
            f = { softplus($0, beta: beta, threshold: threshold) }
        default: throw FixtureError("unknown activation \(fx.op)")
        }
        try checkParity(fx, inputs: ["x"]) { try f($0[0]) }
    }

    @Test(arguments: [
        "softmax_last", "softmax_axis1", "softmax_large", "log_softmax_last", "log_softmax_axis1",
        "log_softmax_large",
    ])
    func softmaxFamily(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let axis = try fx.int("axis")
        let log = fx.op == "log_softmax"
        try checkParity(fx, inputs: ["x"]) { xs in
            log ? try xs[0].logSoftmax(axis: axis) : try xs[0].softmax(axis: axis)
        }
    }

    @Test(arguments: ["logsumexp_last", "logsumexp_axes12_keep", "logsumexp_large"])
    func logSumExp(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let axes = try fx.intArray("axes"), keep = try fx.bool("keep_dim")
        try checkParity(fx, inputs: ["x"]) { xs in try xs[0].logSumExp(axes: axes, keepDim: keep) }
    }
}

// MARK: - Fixture loader

@Suite struct ParityFixtures {
    @Test func loaderReadsTensorsIntsAndParameters() throws {
        let fx = try loadFixtureCase("cross_entropy_ignore_smoothing_zloss")
        #expect(fx.op == "cross_entropy")
        let logits = try fx.tensor("logits")
        let targets = try fx.indexTensor("targets")
        #expect(logits.shape == [10, 13])
        #expect(targets.shape == [10])
        #expect(targets.values.filter { $0 == -100 }.count == 3)
        #expect(try fx.int("count") == 7)
        #expect(try fx.double("label_smoothing") == 0.1)
        let interp = try loadFixtureCase("interpolate_nearest_scale")
        #expect(try interp.optionalIntPair("size") == nil)
        #expect(try interp.optionalDoublePair("scale_factor").map { [$0.0, $0.1] } == [1.7, 0.6])
        #expect(try interp.bool("antialias") == false)
        #expect(try loadFixture("conv2d_groups1")["weight"]?.shape == [4, 3, 3, 3])
        #expect(throws: FixtureError.self) { try loadFixtureCase("no_such_fixture") }
    }

    @Test func everyFixtureDecodes() throws {
        let names = try fixtureNames(prefix: "")
        #expect(names.count >= 90, "found \(names.count) fixtures in \(fixtureDirectory().path)")
        for name in names {
            let fx = try loadFixtureCase(name)
            #expect(fx.tensors["out"] != nil, "\(name) has no output")
        }
    }
}

// MARK: - Convolution, interpolation, pooling

@Suite struct ParityConv {
    @Test(arguments: [
        "conv2d_groups1", "conv2d_groups2", "conv2d_depthwise", "conv2d_stride2", "conv2d_padding1",
        "conv2d_dilation2", "conv2d_nobias", "conv2d_mixed", "conv2d_patch4",
    ])
    func conv2dMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let stride = try fx.intPair("stride"), padding = try fx.intPair("padding")
        let dilation = try fx.intPair("dilation"), groups = try fx.int("groups")
        let hasBias = try fx.bool("bias")
        try checkParity(fx, inputs: hasBias ? ["x", "weight", "bias"] : ["x", "weight"]) { xs in
            try conv2d(
                xs[0], weight: xs[1], bias: hasBias ? xs[2] : nil, stride: stride, padding: padding,
                dilation: dilation, groups: groups)
        }
    }
}

@Suite struct ParityInterpolate {
    @Test(arguments: [
        "interpolate_bicubic_up", "interpolate_bicubic_nonsquare", "interpolate_bicubic_ac",
        "interpolate_bicubic_ac_down", "interpolate_bicubic_down", "interpolate_bicubic_aa_down",
        "interpolate_bicubic_aa_up", "interpolate_bicubic_aa_mixed", "interpolate_bicubic_scale",
        "interpolate_bicubic_aa_scale", "interpolate_bilinear_up", "interpolate_bilinear_nonsquare",
        "interpolate_bilinear_ac", "interpolate_bilinear_down", "interpolate_bilinear_aa_down",
        "interpolate_bilinear_aa_mixed", "interpolate_bilinear_scale", "interpolate_bilinear_ac_scale",
        "interpolate_bilinear_aa_scale", "interpolate_nearest_size", "interpolate_nearest_scale",
        "interpolate_posembed_16_24", "interpolate_posembed_16_24_aa", "interpolate_posembed_24_32x24",
        "interpolate_posembed_24_32x24_aa", "interpolate_posembed_24_16_aa",
    ])
    func interpolateMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let modeName = try fx.string("mode")
        let mode = try #require(InterpolationMode(rawValue: modeName), "unknown mode \(modeName)")
        let size = try fx.optionalIntPair("size"), scale = try fx.optionalDoublePair("scale_factor")
        let alignCorners = try fx.bool("align_corners"), antialias = try fx.bool("antialias")
        try checkParity(fx, inputs: ["x"]) { xs in
            try interpolate(
                xs[0], size: size, scaleFactor: scale, mode: mode, alignCorners: alignCorners,
                antialias: antialias)
        }
    }
}

@Suite struct ParityPooling {
    @Test(arguments: [
        "adaptive_avg_pool2d_16_8", "adaptive_avg_pool2d_16_12", "adaptive_avg_pool2d_27_12",
        "adaptive_avg_pool2d_5x7_3x2",
    ])
    func adaptiveAvgPool(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let size = try fx.intPair("output_size")
        try checkParity(fx, inputs: ["x"]) { xs in try adaptiveAvgPool2d(xs[0], outputSize: size) }
    }

    @Test(arguments: [
        "avg_pool2d_k2s2", "avg_pool2d_k3s2p1", "avg_pool2d_k3s2p1_exclude", "avg_pool2d_k3s2p1_ceil",
        "avg_pool2d_k3s2p1_ceil_exclude", "avg_pool2d_k3s2_ceil", "avg_pool2d_k2x3s1x2p1x0",
    ])
    func avgPool(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let kernel = try fx.intPair("kernel"), stride = try fx.intPair("stride"),
            padding = try fx.intPair("padding")
        let ceil = try fx.bool("ceil_mode"), include = try fx.bool("count_include_pad")
        try checkParity(fx, inputs: ["x"]) { xs in
            try avgPool2d(
                xs[0], kernel: kernel, stride: stride, padding: padding, ceilMode: ceil,
                countIncludePad: include)
        }
    }

    @Test(arguments: [
        "max_pool2d_k2s2", "max_pool2d_k3s2p1", "max_pool2d_k3s2p1_ceil", "max_pool2d_k3s2_ceil",
        "max_pool2d_k3s1d2p1", "max_pool2d_k2x3s2x1p1x1",
    ])
    func maxPool(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let kernel = try fx.intPair("kernel"), stride = try fx.intPair("stride"),
            padding = try fx.intPair("padding")
        let dilation = try fx.intPair("dilation"), ceil = try fx.bool("ceil_mode")
        try checkParity(fx, inputs: ["x"]) { xs in
            try maxPool2d(
                xs[0], kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceil)
        }
    }
}

// MARK: - Normalisation

@Suite struct ParityNormalization {
    @Test(arguments: ["group_norm_g3", "group_norm_g1", "group_norm_g6", "group_norm_g2_noaffine"])
    func groupNormMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let groups = try fx.int("groups"), eps = Float(try fx.double("eps")), affine = try fx.bool("affine")
        try checkParity(fx, inputs: affine ? ["x", "weight", "bias"] : ["x"]) { xs in
            try groupNorm(
                xs[0], groups: groups, weight: affine ? xs[1] : nil, bias: affine ? xs[2] : nil, eps: eps)
        }
    }

    @Test(arguments: ["layer_norm_last", "layer_norm_last2", "layer_norm_offset", "layer_norm_noaffine"])
    func layerNormMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let shape = try fx.intArray("normalized_shape"), eps = Float(try fx.double("eps")),
            affine = try fx.bool("affine")
        try checkParity(fx, inputs: affine ? ["x", "weight", "bias"] : ["x"]) { xs in
            try layerNorm(
                xs[0], normalizedShape: shape, weight: affine ? xs[1] : nil, bias: affine ? xs[2] : nil,
                eps: eps)
        }
    }

    @Test(arguments: ["rms_norm_eps1e-6", "rms_norm_eps1e-5"])
    func rmsNormMatchesHuggingFace(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let eps = Float(try fx.double("eps"))
        try checkParity(fx, inputs: ["x", "weight"]) { xs in try rmsNorm(xs[0], weight: xs[1], eps: eps) }
    }

    @Test(arguments: ["batch_norm_train", "batch_norm_eval"])
    func batchNormMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let training = try fx.bool("training"), momentum = Float(try fx.double("momentum"))
        let eps = Float(try fx.double("eps"))
        let mean0 = try fx.tensor("running_mean"), var0 = try fx.tensor("running_var")
        // Running statistics after one call.
        try forEachParityBackend { _ in
            var rm: Tensor? = mean0, rv: Tensor? = var0
            _ = try noGrad {
                try batchNorm(
                    fx.tensor("x"), runningMean: &rm, runningVar: &rv, weight: fx.tensor("weight"),
                    bias: fx.tensor("bias"),
                    training: training, momentum: momentum, eps: eps)
            }
            try expectParity(try #require(rm), fx, "running_mean_out")
            try expectParity(try #require(rv), fx, "running_var_out")
        }
        // Output and gradients (each evaluation starts from the stored running statistics).
        try checkParity(fx, inputs: ["x", "weight", "bias"]) { xs in
            var m: Tensor? = mean0, v: Tensor? = var0
            return try batchNorm(
                xs[0], runningMean: &m, runningVar: &v, weight: xs[1], bias: xs[2], training: training,
                momentum: momentum, eps: eps)
        }
    }
}

// MARK: - Attention

@Suite struct ParityAttention {
    /// Builds the `AttentionMask` a fixture describes, and checks that it hides exactly what the
    /// boolean mask given to PyTorch hid (the fixture's `attn_mask`, `[B, 1, Tq, Tk]`, 1 = attend).
    static func mask(_ fx: Fixture, batch: Int, tq: Int, tk: Int) throws -> AttentionMask {
        let kind = try fx.string("mask")
        var mask = AttentionMask.none
        var visible: (Int, Int, Int) -> Bool = { _, _, _ in true }
        switch kind {
        case "none", "nomask", "gqa", "cross":
            break
        case "causal", "gqa_causal", "scale":
            mask = .causal
            visible = { _, i, j in j <= i }
        case "causal_tail":
            // Fewer queries than keys: query i sits at position tk - tq + i (bottom-right aligned).
            mask = .causal
            visible = { _, i, j in j <= i + tk - tq }
        case "document", "document_causal":
            let lengths = try fx.indexTensor("document_lengths").values
            let ids = lengths.enumerated().flatMap { Array(repeating: $0.offset, count: $0.element) }
            let causal = kind == "document_causal"
            mask = .documents(
                try IndexTensor(shape: [batch, tk], values: Array((0..<batch).map { _ in ids }.joined())),
                causal: causal)
            visible = { _, i, j in ids[i] == ids[j] && (!causal || j <= i) }
        case "key_padding":
            let lengths = try fx.indexTensor("key_lengths").values
            let flags = lengths.map { n in (0..<tk).map { $0 < n ? 1 : 0 } }
            mask = .keyPadding(try IndexTensor(shape: [batch, tk], values: Array(flags.joined())))
            visible = { b, _, j in j < lengths[b] }
        default:
            throw FixtureError("\(fx.name): unknown mask kind \(kind)")
        }
        if let given = fx.ints["attn_mask"] {
            var expected: [Int] = []
            for b in 0..<batch {
                for i in 0..<tq { for j in 0..<tk { expected.append(visible(b, i, j) ? 1 : 0) } }
            }
            #expect(
                given.values == expected,
                "\(fx.name): the mask rebuilt for Swift differs from the one given to PyTorch")
        } else {
            #expect(
                kind == "none" || kind == "nomask" || kind == "gqa" || kind == "cross",
                "\(fx.name) stores no attn_mask")
        }
        return mask
    }

    @Test(arguments: [
        "sdpa_nomask", "sdpa_causal", "sdpa_document", "sdpa_document_causal", "sdpa_gqa", "sdpa_gqa_causal",
        "sdpa_key_padding", "sdpa_cross", "sdpa_scale", "sdpa_causal_tail",
    ])
    func attentionMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let q = try fx.tensor("q"), k = try fx.tensor("k")
        let mask = try Self.mask(fx, batch: q.shape[0], tq: q.shape[2], tk: k.shape[2])
        let scale = try fx.optionalDouble("scale").map { Float($0) }
        try checkParity(fx, inputs: ["q", "k", "v"]) { xs in
            try scaledDotProductAttention(q: xs[0], k: xs[1], v: xs[2], mask: mask, scale: scale)
        }
    }
}

// MARK: - Cross-entropy and z-loss

@Suite struct ParityCrossEntropy {
    @Test(arguments: [
        "cross_entropy_plain", "cross_entropy_ignore", "cross_entropy_smoothing",
        "cross_entropy_ignore_smoothing_zloss", "cross_entropy_zloss_large", "cross_entropy_batched",
    ])
    func crossEntropyMatchesTorch(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let logits = try fx.tensor("logits"), targets = try fx.indexTensor("targets")
        let ignore = try fx.int("ignore_index"), smoothing = Float(try fx.double("label_smoothing"))
        let coef = Float(try fx.double("z_loss_coefficient"))
        func parts(_ x: Tensor) throws -> CrossEntropyParts {
            try crossEntropyParts(
                logits: x, targets: targets, ignoreIndex: ignore, labelSmoothing: smoothing,
                zLossCoefficient: coef)
        }
        try forEachParityBackend { _ in
            let p = try noGrad { try parts(logits) }
            #expect(p.count == (try fx.int("count")))
            let n = Float(p.count)
            try expectParity(p.lossSum, fx, "loss_sum")
            try expectParity(p.zLossSum, fx, "z_loss_sum")
            try expectParity(p.lossSum / n, fx, "out")
            try expectParity(try (p.lossSum + p.zLossSum) / n, fx, "total_mean")
            let mean = try noGrad {
                try crossEntropy(
                    logits: logits, targets: targets, ignoreIndex: ignore, labelSmoothing: smoothing,
                    zLossCoefficient: coef)
            }
            try expectParity(mean, fx, "total_mean")
            // Gradients: of the mean cross-entropy, and of the mean cross-entropy plus mean z-loss.
            let gLoss = try gradient(of: { xs in try parts(xs[0]).lossSum / n }, at: [logits])[0]
            try expectParity(gLoss, fx, "grad_logits")
            let gTotal = try gradient(
                of: { xs in
                    let q = try parts(xs[0]); return try (q.lossSum + q.zLossSum) / n
                }, at: [logits])[0]
            try expectParity(gTotal, fx, "grad_logits_total")
        }
    }
}
