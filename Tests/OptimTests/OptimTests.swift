import Foundation
import Optim
import SightlineTestSupport
import Tensor
import Testing

@Suite struct LearningRateLawAndSchedules {
    @Test func mm1LawToOneSignificantDigit() {
        func oneDigit(_ x: Double) -> Double {
            let e = floor(log10(x))
            return (x / pow(10, e)).rounded() * pow(10, e)
        }
        #expect(abs(oneDigit(mm1PeakLearningRate(parameterCount: 3_000_000_000)) - 6e-5) < 1e-12)
        #expect(abs(oneDigit(mm1PeakLearningRate(parameterCount: 7_000_000_000)) - 4e-5) < 1e-12)
        #expect(abs(oneDigit(mm1PeakLearningRate(parameterCount: 30_000_000_000)) - 2e-5) < 1e-12)
        #expect(
            PeakLearningRate.auto.resolve(languageModelParameters: 7_000_000_000)
                == mm1PeakLearningRate(parameterCount: 7_000_000_000))
    }

    @Test func autoOrNumberInConfigs() throws {
        let auto = try JSONDecoder().decode([PeakLearningRate].self, from: Data(#"["auto", 0.0003]"#.utf8))
        #expect(auto == [.auto, .fixed(3e-4)])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([PeakLearningRate].self, from: Data(#"["fast"]"#.utf8))
        }
    }

    @Test func mm1CosineScheduleClosedForm() {
        let s = LearningRateSchedule.mm1
        #expect(s.multiplier(at: 0) == 1.0 / 2000)
        #expect(s.multiplier(at: 1999) == 1)
        #expect(abs(s.multiplier(at: 2000) - 1) < 1e-12)
        let mid = 2000 + (200_000 - 2000) / 2
        #expect(abs(s.multiplier(at: mid) - (0.1 + 0.9 * 0.5)) < 1e-9)
        #expect(abs(s.multiplier(at: 200_000) - 0.1) < 1e-12)
        #expect(abs(s.multiplier(at: 250_000) - 0.1) < 1e-12)  // stays at the floor
        // A pure function of the step: resuming anywhere gives the same value.
        #expect(s.learningRate(at: 12345, peak: 2e-4) == 2e-4 * s.multiplier(at: 12345))
        #expect(LearningRateSchedule.linear(warmup: 10, total: 110, floor: 0).multiplier(at: 60) == 0.5)
        #expect(LearningRateSchedule.constant(warmup: 4).multiplier(at: 1) == 0.5)
    }
}

@Suite struct AdamWBehaviour {
    func params(_ seed: UInt64) -> [(String, Parameter)] {
        [
            ("layer.weight", Parameter(randomTensor([4, 3], seed: seed))),
            ("layer.bias", Parameter(randomTensor([4], seed: seed + 1))),
        ]
    }

    @Test func decoupledDecayIgnoresPeakRateWithZeroGradients() throws {
        var finals: [[Float]] = []
        for lr in [1e-3, 1.0] {
            let p = params(1)
            // Warm-up over 2 steps: the first step's multiplier is 0.5.
            let opt = AdamW(
                .init(learningRate: lr, weightDecay: 0.1, semantics: .decoupled, schedule: .constant(warmup: 2)))
            var g = Gradients()
            for (name, q) in p { g = try merged(g, name, Tensor.zeros(q.shape)) }
            let outcome = try opt.update(p, gradients: g)
            #expect(outcome.report?.scheduleMultiplier == 0.5)
            finals.append(p[0].1.data.scalars)
            // theta <- theta (1 - s wd)
            let expected = params(1)[0].1.data.scalars.map { $0 * Float(1 - 0.5 * 0.1) }
            #expect(relativeError(p[0].1.data.scalars, expected) < 1e-7)
        }
        #expect(finals[0] == finals[1])
        // PyTorch semantics scales the decay with the rate.
        let p = params(1)
        let opt = AdamW(
            .init(learningRate: 2.0, weightDecay: 0.1, semantics: .pytorch, schedule: .constant(warmup: 2)))
        try opt.update(p, gradients: try zeroGrads(p))
        #expect(p[0].1.data.scalars != finals[0])
    }

    @Test func defaultGroupsExemptBiasesNormsEmbeddingsAndQueries() {
        let groups = ParameterGroups(
            weightDecay: 0.1, learningRateMultipliers: ["vision_model.": 0.1, "connector.": 10])
        #expect(groups.settings(for: "model.layers.0.mlp.up_proj.weight", shape: [8, 4]).weightDecay == 0.1)
        #expect(groups.settings(for: "model.layers.0.mlp.up_proj.bias", shape: [8]).weightDecay == 0)
        #expect(groups.settings(for: "model.norm.weight", shape: [8]).weightDecay == 0)
        #expect(
            groups.settings(for: "vision_model.embeddings.position_embedding.weight", shape: [50, 8])
                .weightDecay == 0)
        #expect(groups.settings(for: "vision_model.embeddings.class_embedding", shape: [8]).weightDecay == 0)
        #expect(groups.settings(for: "connector.cls_token_w16_q16", shape: [1, 16, 8]).weightDecay == 0)
        #expect(
            groups.settings(for: "vision_model.encoder.layers.0.mlp.fc1.weight", shape: [8, 8])
                .learningRateMultiplier == 0.1)
        #expect(
            groups.settings(for: "connector.out_proj.weight", shape: [8, 8]).learningRateMultiplier == 10)
    }

    @Test func noDecayPatternsMatchAsLiteralSubstringsAnywhere() {
        let groups = ParameterGroups(weightDecay: 0.1)
        func decay(_ name: String) -> Double { groups.settings(for: name, shape: [4, 4]).weightDecay }
        // Matrices: only the patterns decide. At the start, in the middle, at the end, the whole name.
        #expect(decay("ln_post.weight") == 0)
        #expect(decay("resampler.query_proj") == 0)
        #expect(decay("connector.queries") == 0)
        #expect(decay("norm") == 0)
        // Near misses, a name shorter than the pattern, a pattern split by a character.
        #expect(decay("lnx_post.weight") == 0.1)
        #expect(decay("nor") == 0.1)
        #expect(decay("model.no_rm.weight") == 0.1)
        #expect(decay("model.querz") == 0.1)
        // A custom pattern list, repeated first bytes before the match.
        let custom = ParameterGroups(weightDecay: 0.5, noDecayPatterns: ["aab"])
        #expect(custom.settings(for: "xaaab", shape: [2, 2]).weightDecay == 0)
        #expect(custom.settings(for: "xaaba", shape: [2, 2]).weightDecay == 0)
        #expect(custom.settings(for: "xaaxb", shape: [2, 2]).weightDecay == 0.5)
    }

    @Test func nonFiniteNormSkipsAndCounts() throws {
        let p = params(2)
        let before = p.map { $0.1.data.scalars }
        let opt = AdamW(.init(learningRate: 1e-2))
        var g = try zeroGrads(p)
        g = try merged(Gradients(), "layer.weight", Tensor.full([4, 3], .nan))
        let norm = clipGradientNorm(&g, maxNorm: 1)
        #expect(norm.isNaN)
        #expect(try opt.update(p, gradients: g, gradientNorm: norm).isSkipped)
        #expect(opt.skippedSteps == 1 && opt.step == 0 && opt.globalStep == 1)
        #expect(p.map { $0.1.data.scalars } == before)
    }

    @Test func clippingRescalesToExactlyMaxNorm() throws {
        var g = try merged(merged(Gradients(), "a", Tensor([3, 4])), "b", Tensor([12]))  // norm 13
        let norm = clipGradientNorm(&g, maxNorm: 1)
        #expect(norm == 13)
        #expect(abs(globalGradientNorm(g) - 1) < 1e-6)
        var small = try merged(Gradients(), "a", Tensor([0.3, 0.4]))
        #expect(clipGradientNorm(&small, maxNorm: 1) == 0.5)
        #expect(small["a"]!.scalars == [0.3, 0.4])  // below the threshold: untouched
    }

    @Test func accumulatingMicroBatchesEqualsOneBigBatch() throws {
        // Loss = sum over tokens of squared error; 4 micro-batches of different sizes vs one batch.
        let w = Parameter(randomTensor([3, 2], seed: 5))
        let xs = (0..<4).map { randomTensor([$0 + 2, 3], seed: 10 + UInt64($0)) }
        let ys = (0..<4).map { randomTensor([$0 + 2, 2], seed: 20 + UInt64($0)) }
        var acc = GradientAccumulator()
        for (x, y) in zip(xs, ys) {
            let (_, g) = try valueAndGradient(at: [("w", w)]) {
                try (Tensor.matmul(x, w.value) - y).square().sum()
            }
            try acc.add(g, tokens: x.shape[0])
        }
        let micro = acc.finalize()
        let bigX = try Tensor.concatenate(xs), bigY = try Tensor.concatenate(ys)
        let (_, big) = try valueAndGradient(at: [("w", w)]) {
            try (Tensor.matmul(bigX, w.value) - bigY).square().sum(axis: 1).mean()
        }
        #expect(relativeError(micro["w"]!.scalars, big["w"]!.scalars) < 1e-6)
        #expect(acc.tokenCount == 0)  // finalize resets
    }

    @Test func saveRestoreContinueIsBitExact() throws {
        func trainingRun(_ steps: Range<Int>, _ p: [(String, Parameter)], _ opt: AdamW) throws {
            for step in steps {
                var gen = RandomGenerator(seed: UInt64(100 + step))
                var g = Gradients()
                for (name, q) in p { g = try merged(g, name, Tensor.normal(q.shape, generator: &gen)) }
                try opt.update(p, gradients: g, maxGradientNorm: 1)
            }
        }
        let config = AdamW.Config(
            learningRate: 1e-2, weightDecay: 0.05, semantics: .decoupled,
            schedule: .cosine(warmup: 3, total: 20, floor: 0.1))
        let straight = params(7)
        try trainingRun(0..<10, straight, AdamW(config))
        let resumed = params(7)
        let first = AdamW(config)
        try trainingRun(0..<5, resumed, first)
        // "Save": copy parameters and state out; "restore" into fresh objects.
        let savedState = Dictionary(
            uniqueKeysWithValues: first.stateTensors().map { ($0.0, Tensor($0.1.scalars).detached()) })
        let reshaped = try savedState.mapValues { t -> Tensor in t }
        let restored = params(99)
        for ((_, dst), (_, src)) in zip(restored, resumed) {
            dst.data = try Tensor(shape: src.shape, scalars: src.data.scalars)
        }
        let second = AdamW(config)
        var shaped: [String: Tensor] = [:]
        for (k, v) in reshaped {
            let name = k.replacingOccurrences(of: ".exp_avg_sq", with: "").replacingOccurrences(
                of: ".exp_avg", with: "")
            shaped[k] = try v.reshaped(restored.first { $0.0 == name }!.1.shape)
        }
        try second.loadState(shaped, step: first.step)
        try trainingRun(5..<10, restored, second)
        for ((name, a), (_, b)) in zip(straight, restored) {
            #expect(a.data.scalars == b.data.scalars, "\(name)")
        }
        #expect(throws: OptimizerError.self) { try second.loadState(["x.exp_avg": Tensor([1])], step: 1) }
    }
}

@Suite struct SGDBehaviour {
    @Test func momentumMatchesHandComputedSteps() throws {
        // p0 = 1, g = 2 each step, lr 0.1, momentum 0.9: buf1 = 2, buf2 = 0.9*2 + 2 = 3.8.
        let p = Parameter(Tensor([1]))
        let opt = SGD(.init(learningRate: 0.1, momentum: 0.9))
        let g = try merged(Gradients(), "p", Tensor([2]))
        try opt.update([("p", p)], gradients: g)
        #expect(abs(p.data.scalars[0] - 0.8) < 1e-7)
        try opt.update([("p", p)], gradients: g)
        #expect(abs(p.data.scalars[0] - (0.8 - 0.38)) < 1e-6)
        // Nesterov and weight decay: g' = 2 + 0.5 * 1 = 2.5; buf = 2.5; d = 2.5 + 0.9 * 2.5.
        let q = Parameter(Tensor([1]))
        try SGD(.init(learningRate: 0.1, momentum: 0.9, weightDecay: 0.5, nesterov: true)).update(
            [("p", q)], gradients: g)
        #expect(abs(q.data.scalars[0] - (1 - 0.1 * 4.75)) < 1e-6)
    }
}

@Suite struct ZLossTerm {
    /// The z-loss is Optim's config value, computed by Tensor's fused cross-entropy in the same call
    /// as the cross-entropy (`crossEntropyParts`), which is how Language's next-token loss gets it.
    @Test func equalsCoefficientTimesSumOfSquaredLogSumExp() throws {
        let logits = randomTensor([5, 7], seed: 3, low: -3, high: 3)
        let targets = IndexTensor([1, -100, 6, 0, 2])
        let z = ZLoss(coefficient: 1e-4)
        let parts = try crossEntropyParts(logits: logits, targets: targets, zLossCoefficient: z.coefficient)
        // Independent computation in Double over the supervised rows.
        let v = logits.scalars
        var acc = 0.0
        for row in [0, 2, 3, 4] {
            let xs = v[(row * 7)..<(row * 7 + 7)].map(Double.init)
            let m = xs.max()!
            let lse = m + log(xs.map { exp($0 - m) }.reduce(0, +))
            acc += lse * lse
        }
        #expect(parts.count == 4)
        #expect(abs(Double(try parts.zLossSum.item()) - 1e-4 * acc) < 1e-8)
        let r = try gradCheck(eps: 1e-2, atol: 1e-6, [logits]) {
            try crossEntropyParts(logits: $0[0], targets: targets, zLossCoefficient: 0.1).zLossSum
        }
        #expect(r.passed, "\(r)")
        #expect(ZLoss.disabled.isEnabled == false && z.isEnabled)
    }

    @Test func configRejectsNegativeOrNonFiniteCoefficients() throws {
        #expect(try ZLoss(coefficient: 1e-4).validated() == ZLoss(coefficient: 1e-4))
        for bad: Float in [-1e-4, .nan, .infinity] {
            #expect(throws: OptimizerError.self) { try ZLoss(coefficient: bad).validated() }
        }
        let decoded = try JSONDecoder().decode(ZLoss.self, from: Data(#"{"coefficient": 0.0001}"#.utf8))
        #expect(decoded.coefficient == 1e-4)
    }
}

func merged(_ g: Gradients, _ name: String, _ t: Tensor) throws -> Gradients {
    // Builds a Gradients value through the public API (valueAndGradient of a linear function).
    let p = Parameter(Tensor.zeros(t.shape))
    let (_, one) = try valueAndGradient(at: [(name, p)]) { try (p.value * t).sum() }
    var out = g
    try out.accumulate(one)
    return out
}

func zeroGrads(_ p: [(String, Parameter)]) throws -> Gradients {
    var g = Gradients()
    for (name, q) in p { g = try merged(g, name, Tensor.zeros(q.shape)) }
    return g
}

@Suite struct ZLossFixture {
    /// PyTorch: z_loss = coef * mean(lse^2) over non-ignored rows; its gradient is the difference of the
    /// gradients of (CE mean + z-loss) and of CE mean, both stored by the fixture.
    @Test func matchesPyTorchValueAndGradient() throws {
        let f = try loadFixtureCase("cross_entropy_zloss_large")
        let logits = try f.tensor("logits"), targets = try f.indexTensor("targets")
        let z = ZLoss(coefficient: Float(try f.double("z_loss_coefficient")))
        let ignore = try f.int("ignore_index")
        // PyTorch's mean form is zLossSum / count, from the same call as the cross-entropy.
        func meanZLoss(_ logits: Tensor) throws -> Tensor {
            let parts = try crossEntropyParts(
                logits: logits, targets: targets, ignoreIndex: ignore, zLossCoefficient: z.coefficient)
            return parts.zLossSum / Float(parts.count)
        }
        let value = try meanZLoss(logits)
        let refValue = try f.tensor("z_loss")
        #expect(
            relativeError(value.scalars, refValue.scalars) < 1e-5,
            "value \(value.scalars) vs \(refValue.scalars)")
        let g = try gradient(of: { try meanZLoss($0[0]) }, at: [logits])[0]
        let refGrad = try f.tensor("grad_logits_total") - f.tensor("grad_logits")
        let err = relativeError(g.scalars, refGrad.scalars)
        #expect(err < 1e-4, "z-loss gradient relative error \(err)")
    }
}
