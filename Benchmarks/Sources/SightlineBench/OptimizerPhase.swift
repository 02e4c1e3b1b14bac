import Foundation
import Optim
import Tensor

// The optimizer phase of a training step, clip + AdamW, over the trainable set of the `small`
// configuration: a frozen ViT (384 wide, 6 layers: no gradients, not in the set) feeding a
// Llama-style decoder 512 wide, 8 layers, 8 heads (8 key/value heads), MLP 1376, vocabulary 32000,
// untied embeddings, and a connector taken as a two-layer MLP 384 -> 512 -> 512 with biases
// (LLaVA-1.5's projector shape). 58,533,376 trainable parameters in 79 tensors; names and shapes follow
// the HF checkpoint keys, so the default parameter groups exempt the norms and biases from decay.
//
// Two paths on the same gradients in the same run:
// - baseline: the previous implementation, kept here only as the baseline: a sequential Double
//   sum of squares per gradient on one thread, clipping by allocating scaled copies of every
//   gradient, then the fused AdamW element loop (multi-threaded) reading the copies;
// - current: `AdamW.update(..., maxGradientNorm: 1)`: the sum of squares in fixed blocks on all
//   threads, the clipping coefficient fused into the AdamW pass, both through the backend.

/// The trainable (name, shape) list of the `small` configuration (see above).
func smallTrainableShapes() -> [(String, [Int])] {
    let hidden = 512, layers = 8, mlp = 1376, vocab = 32000, vision = 384
    var out: [(String, [Int])] = [
        ("connector.linear_1.weight", [hidden, vision]), ("connector.linear_1.bias", [hidden]),
        ("connector.linear_2.weight", [hidden, hidden]), ("connector.linear_2.bias", [hidden]),
        ("model.embed_tokens.weight", [vocab, hidden]),
    ]
    for i in 0..<layers {
        let p = "model.layers.\(i)."
        out += [
            (p + "input_layernorm.weight", [hidden]),
            (p + "self_attn.q_proj.weight", [hidden, hidden]), (p + "self_attn.k_proj.weight", [hidden, hidden]),
            (p + "self_attn.v_proj.weight", [hidden, hidden]), (p + "self_attn.o_proj.weight", [hidden, hidden]),
            (p + "post_attention_layernorm.weight", [hidden]),
            (p + "mlp.gate_proj.weight", [mlp, hidden]), (p + "mlp.up_proj.weight", [mlp, hidden]),
            (p + "mlp.down_proj.weight", [hidden, mlp]),
        ]
    }
    out += [("model.norm.weight", [hidden]), ("lm_head.weight", [vocab, hidden])]
    return out
}

func optimizerPhaseSuite(_ report: Report, repeats: Int) throws {
    var gen = RandomGenerator(seed: 17)
    let shapes = smallTrainableShapes()
    var params: [(String, Parameter)] = []
    var raw: [(String, Tensor)] = []
    var grads = Gradients()
    for (name, shape) in shapes {
        let p = Parameter(Tensor.normal(shape, std: 0.02, generator: &gen))
        params.append((name, p))
        let g = Tensor.normal(shape, std: 1e-3, generator: &gen)  // global norm ~7.6: the clip is active
        raw.append((name, g))
        let (_, one) = try valueAndGradient(at: [(name, p)]) { try (p.value * g).sum() }
        try grads.accumulate(one)
    }
    let n = shapes.reduce(0) { $0 + $1.1.reduce(1, *) }
    print("# optim-phase: \(n) trainable parameters in \(shapes.count) tensors, \(ComputeRuntime.threads) threads")
    let config = AdamW.Config(
        learningRate: 2e-4, weightDecay: 0.1, semantics: .decoupled, schedule: .cosine(warmup: 10, total: 1000, floor: 0.1))

    // Baseline: the previous code path.
    let baselineOpt = BaselineAdamW(config)
    let baseline = report.add(
        "optim-phase", "clip + AdamW, small set, previous path", unit: "steps/s",
        try measure(repeats: repeats, warmup: 1, work: 1) { try baselineOpt.step(params, raw, maxNorm: 1) })

    let opt = AdamW(config)
    _ = report.add(
        "optim-phase", "clip + AdamW, small set, fused through the backend", unit: "steps/s",
        try measure(repeats: repeats, warmup: 1, work: 1) {
            try opt.update(params, gradients: grads, gradientNorm: nil, maxGradientNorm: 1)
        }, baseline: baseline)
    // The two parts of the current path on their own.
    _ = report.add(
        "optim-phase", "  global norm only (fixed blocks, all threads)", unit: "norms/s",
        measure(repeats: repeats, warmup: 1, work: 1) { _ = globalGradientNorm(grads) })
    _ = report.add(
        "optim-phase", "  previous global norm (sequential Double)", unit: "norms/s",
        measure(repeats: repeats, warmup: 1, work: 1) { _ = BaselineAdamW.norm(raw) })
}

/// The previous clip + AdamW implementation, kept only as this benchmark's baseline.
final class BaselineAdamW {
    let config: AdamW.Config
    var step = 0
    var expAvg: [String: Tensor] = [:]
    var expAvgSq: [String: Tensor] = [:]

    init(_ config: AdamW.Config) { self.config = config }

    static func norm(_ gradients: [(String, Tensor)]) -> Float {
        var total: Double = 0
        for (_, g) in gradients {
            total += g.withUnsafeBufferPointer { p -> Double in
                var s = 0.0
                for v in p { s += Double(v) * Double(v) }
                return s
            }
        }
        return Float(total.squareRoot())
    }

    func step(_ parameters: [(String, Parameter)], _ gradients: [(String, Tensor)], maxNorm: Float) throws {
        let norm = Self.norm(gradients)
        guard norm.isFinite else { return }
        let coefficient = min(maxNorm / (norm + 1e-6), 1)
        let clipped = coefficient < 1 ? noGrad { gradients.map { ($0.0, $0.1 * coefficient) } } : gradients
        let byName = Dictionary(uniqueKeysWithValues: clipped)
        let s = config.schedule.multiplier(at: step)
        step += 1
        let t = Double(step)
        let bc1 = 1 - pow(config.beta1, t)
        let bc2Sqrt = (1 - pow(config.beta2, t)).squareRoot()
        for (name, p) in parameters {
            guard let g = byName[name] else { continue }
            let group = config.groups.settings(for: name, shape: p.shape)
            var m = expAvg.removeValue(forKey: name) ?? Tensor.zeros(p.shape)
            var v = expAvgSq.removeValue(forKey: name) ?? Tensor.zeros(p.shape)
            let lr = config.learningRate * group.learningRateMultiplier * s
            let decay = Float(1 - s * group.weightDecay)
            let c = (
                decay: decay, beta1: Float(config.beta1), beta2: Float(config.beta2), stepSize: Float(lr / bc1),
                bc2Sqrt: Float(bc2Sqrt), eps: Float(config.eps)
            )
            let count = p.shape.reduce(1, *)
            p.update { data in
                g.withUnsafeBufferPointer { gp in
                    m.withUnsafeMutableBufferPointer { mp in
                        v.withUnsafeMutableBufferPointer { vp in
                            data.withUnsafeMutableBufferPointer { pp in
                                let G = gp.baseAddress!, M = mp.baseAddress!, V = vp.baseAddress!,
                                    P = pp.baseAddress!
                                let w1 = 1 - c.beta1, w2 = 1 - c.beta2, b2 = c.beta2, decay = c.decay
                                let negStep = -c.stepSize, bc2 = c.bc2Sqrt, eps = c.eps
                                ComputeRuntime.parallelFor(count, grain: 1 << 15) { r in
                                    let g = G + r.lowerBound, m = M + r.lowerBound, v = V + r.lowerBound,
                                        p = P + r.lowerBound
                                    let count = r.count
                                    var i = 0
                                    while i + 8 <= count {
                                        let gi = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                                        let m0 = UnsafeRawPointer(m + i).loadUnaligned(as: SIMD8<Float>.self)
                                        let v0 = UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                                        let pi =
                                            UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) * decay
                                        let mi = m0 + w1 * (gi - m0)
                                        let vi = v0 * b2 + w2 * gi * gi
                                        let denom = vi.squareRoot() / bc2 + eps
                                        UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: SIMD8<Float>.self)
                                        UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: SIMD8<Float>.self)
                                        UnsafeMutableRawPointer(p + i).storeBytes(
                                            of: pi + negStep * mi / denom, as: SIMD8<Float>.self)
                                        i += 8
                                    }
                                    while i < count {
                                        let gi = g[i]
                                        let pi = p[i] * decay
                                        let mi = m[i] + w1 * (gi - m[i])
                                        let vi = v[i] * b2 + w2 * gi * gi
                                        m[i] = mi
                                        v[i] = vi
                                        p[i] = pi + negStep * mi / (vi.squareRoot() / bc2 + eps)
                                        i += 1
                                    }
                                }
                            }
                        }
                    }
                }
            }
            expAvg[name] = m
            expAvgSq[name] = v
        }
    }
}
