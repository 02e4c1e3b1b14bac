import Foundation
import Optim
import SightlineTestSupport
import Tensor
import Testing

/// The optimizer's one step story (`Optimizer`): the schedule's position and AdamW's bias correction
/// read `step` (applied updates), a skipped step changes only `skippedSteps`, the trainer's global
/// step is `step + skippedSteps`; and the one gate that keeps non-finite gradients out.
@Suite struct StepStory {
    func params(_ seed: UInt64) -> [(String, Parameter)] {
        [
            ("layer.weight", Parameter(randomTensor([6, 5], seed: seed))),
            ("layer.bias", Parameter(randomTensor([6], seed: seed + 1))),
        ]
    }

    func gradients(_ p: [(String, Parameter)], seed: UInt64, poison: Bool = false) throws -> Gradients {
        var gen = RandomGenerator(seed: seed)
        var g = Gradients()
        for (name, q) in p {
            var t = Tensor.normal(q.shape, generator: &gen)
            if poison && name == "layer.weight" {
                t.withUnsafeMutableBufferPointer { $0[7] = .nan }
            }
            g = try merged(g, name, t)
        }
        return g
    }

    @Test func aSkippedStepMovesNeitherScheduleNorBiasCorrection() throws {
        let schedule = LearningRateSchedule.cosine(warmup: 2, total: 6, floor: 0.1)
        let config = AdamW.Config(learningRate: 1e-2, weightDecay: 0.1, schedule: schedule)
        // Run A meets a non-finite gradient at its second call; run B never sees it.
        let a = params(1), b = params(1)
        let optA = AdamW(config), optB = AdamW(config)
        var reports: [StepReport] = []
        for (call, seed) in [(0, 10), (1, 11), (2, 12), (3, 13)] {
            let outcome = try optA.update(
                a, gradients: try gradients(a, seed: UInt64(seed), poison: call == 1), gradientNorm: nil,
                maxGradientNorm: 1)
            #expect(outcome.isSkipped == (call == 1))
            #expect(optA.globalStep == call + 1)
            if let r = outcome.report { reports.append(r) }
        }
        for seed in [10, 12, 13] {
            try optB.update(b, gradients: try gradients(b, seed: UInt64(seed)), gradientNorm: nil, maxGradientNorm: 1)
        }
        #expect(optA.step == 3 && optA.skippedSteps == 1 && optA.globalStep == 4)
        #expect(optB.step == 3 && optB.skippedSteps == 0)
        // The applied steps used the schedule at 0, 1, 2 and bias correction t = 1, 2, 3.
        #expect(reports.map(\.step) == [1, 2, 3])
        #expect(reports.map(\.scheduleMultiplier) == (0..<3).map { schedule.multiplier(at: $0) })
        #expect(reports.map { $0.learningRates["default"]! } == (0..<3).map { 1e-2 * schedule.multiplier(at: $0) })
        // The skip left no trace: parameters and moments are those of the run that never saw it.
        for ((name, pa), (_, pb)) in zip(a, b) { #expect(pa.data.scalars == pb.data.scalars, "\(name)") }
        let sa = optA.stateTensors(), sb = optB.stateTensors()
        #expect(sa.map(\.0) == sb.map(\.0))
        for ((k, ta), (_, tb)) in zip(sa, sb) { #expect(ta.scalars == tb.scalars, "\(k)") }
    }

    @Test func nonFiniteGradientsNeverReachTheMomentsWhenNoNormIsGiven() throws {
        for make in [{ AdamW(.init(learningRate: 1e-2)) as any Optimizer }, { SGD(.init(learningRate: 1e-2, momentum: 0.9)) }] {
            let p = params(3)
            let opt = make()
            try opt.update(p, gradients: try gradients(p, seed: 1), gradientNorm: nil, maxGradientNorm: nil)
            let before = opt.stateTensors().map { $0.1.scalars }
            let values = p.map { $0.1.data.scalars }
            // One NaN among 30 elements, no norm from the caller, no clipping: the gate computes it.
            let outcome = try opt.update(p, gradients: try gradients(p, seed: 2, poison: true), gradientNorm: nil, maxGradientNorm: nil)
            #expect(outcome.isSkipped && outcome.gradientNorm.isNaN)
            #expect(opt.stateTensors().map { $0.1.scalars } == before)
            #expect(p.map { $0.1.data.scalars } == values)
            #expect(opt.step == 1 && opt.skippedSteps == 1)
            // An infinite norm given by the caller (e.g. reduced over ranks) skips too.
            #expect(try opt.update(p, gradients: try gradients(p, seed: 3), gradientNorm: .infinity, maxGradientNorm: nil).isSkipped)
            #expect(opt.skippedSteps == 2)
        }
    }

    @Test func reportedLearningRatesAreThoseEachGroupUsed() throws {
        // Plain SGD without decay: p_new = p - lr * g exactly, so the rate used is recoverable.
        let groups = ParameterGroups(
            weightDecay: 0, learningRateMultipliers: ["vision_model.": 0.1, "connector.": 10])
        let opt = SGD(.init(learningRate: 0.5, groups: groups, schedule: .constant(warmup: 4)))
        let p: [(String, Parameter)] = [
            ("vision_model.fc.weight", Parameter(Tensor.zeros([2, 2]))),
            ("connector.proj.weight", Parameter(Tensor.zeros([2, 2]))),
            ("language_model.lm_head.weight", Parameter(Tensor.zeros([2, 2]))),
        ]
        var g = Gradients()
        for (name, _) in p { g = try merged(g, name, Tensor.full([2, 2], 1)) }
        let report = try #require(try opt.update(p, gradients: g, gradientNorm: nil, maxGradientNorm: nil).report)
        let s = LearningRateSchedule.constant(warmup: 4).multiplier(at: 0)  // 0.25
        #expect(report.learningRates == ["vision_model.": 0.5 * 0.1 * s, "connector.": 0.5 * 10 * s, "default": 0.5 * s])
        #expect(report.learningRate == 0.5 * s)
        for (name, q) in p {
            let group = groups.settings(for: name, shape: q.shape).group
            let used = Double(-q.data.scalars[0])
            #expect(abs(used - report.learningRates[group]!) <= 1e-7 * report.learningRates[group]!, "\(name)")
        }
    }

    @Test func weightDecayOnVectorsAndNormsIsAPerGroupChoice() throws {
        // LLaVA/MM1 (the default): 1-D tensors and norm-like names are exempt.
        let mm1 = ParameterGroups(weightDecay: 0.1)
        #expect(mm1.settings(for: "model.layers.0.input_layernorm.weight", shape: [8]).weightDecay == 0)
        #expect(mm1.settings(for: "model.layers.0.mlp.up_proj.bias", shape: [8]).weightDecay == 0)
        #expect(mm1.settings(for: "model.layers.0.mlp.up_proj.weight", shape: [8, 4]).weightDecay == 0.1)
        // PyTorch's default: everything decays.
        let all = ParameterGroups.decayEverything(weightDecay: 0.1)
        #expect(all.settings(for: "model.layers.0.input_layernorm.weight", shape: [8]).weightDecay == 0.1)
        #expect(all.settings(for: "model.layers.0.mlp.up_proj.bias", shape: [8]).weightDecay == 0.1)
        #expect(all.settings(for: "vision_model.embeddings.class_embedding", shape: [8]).weightDecay == 0.1)
        // Per group: the connector decays its vectors at its own rate, the rest follows MM1.
        let mixed = ParameterGroups(
            weightDecay: 0.1,
            groups: [ParameterGroup(name: "connector", prefixes: ["connector."], learningRateMultiplier: 2, weightDecay: 0.05, decayVectorsAndNorms: true)])
        #expect(mixed.settings(for: "connector.norm.weight", shape: [8]) == GroupSettings(group: "connector", weightDecay: 0.05, learningRateMultiplier: 2))
        #expect(mixed.settings(for: "model.norm.weight", shape: [8]) == GroupSettings(weightDecay: 0))
        // Configs decode with the defaults for absent fields, and round-trip.
        let decoded = try JSONDecoder().decode(ParameterGroups.self, from: Data(#"{"weightDecay": 0.1}"#.utf8))
        #expect(decoded == mm1)
        #expect(try JSONDecoder().decode(ParameterGroups.self, from: JSONEncoder().encode(mixed)) == mixed)
        // The choice reaches the update: with zero gradients AdamW only decays.
        for (groups, expectDecay) in [(mm1, false), (all, true)] {
            let norm = Parameter(Tensor.full([4], 2))
            let opt = AdamW(.init(learningRate: 0.5, groups: groups))
            try opt.update([("model.norm.weight", norm)], gradients: try merged(Gradients(), "model.norm.weight", Tensor.zeros([4])), gradientNorm: nil, maxGradientNorm: nil)
            #expect(norm.data.scalars == [Float](repeating: expectDecay ? Float(2 * (1 - 0.5 * 0.1)) : 2, count: 4))
        }
    }

    @Test func fusedClippingEqualsClippingFirst() throws {
        let a = params(5), b = params(5)
        let optA = AdamW(.init(learningRate: 1e-2)), optB = AdamW(.init(learningRate: 1e-2))
        for seed in 20..<24 {
            var g = try gradients(a, seed: UInt64(seed))
            g.scale(by: 10)  // norm well above 1: the clip is active
            let outcome = try optA.update(a, gradients: g, gradientNorm: nil, maxGradientNorm: 1)
            #expect(outcome.report!.clipCoefficient < 1)
            let norm = clipGradientNorm(&g, maxNorm: 1)
            #expect(norm == outcome.gradientNorm)
            try optB.update(b, gradients: g, gradientNorm: norm, maxGradientNorm: nil)
        }
        for ((name, pa), (_, pb)) in zip(a, b) { #expect(pa.data.scalars == pb.data.scalars, "\(name)") }
        #expect(throws: OptimizerError.self) {
            try optA.update(a, gradients: try gradients(a, seed: 1), gradientNorm: nil, maxGradientNorm: 0)
        }
    }

    /// Optim reaches memory only through the backend: a step on another backend runs the norm and the
    /// updates there, with nothing computed on the default one.
    @Test func theOptimizerPhaseRunsOnTheCurrentBackend() throws {
        for make in [{ AdamW(.init(learningRate: 1e-2)) as any Optimizer }, { SGD(.init(learningRate: 1e-2, momentum: 0.9)) }] {
            let device = RecordingBackend(name: "device")
            let p = params(8)
            let g = try gradients(p, seed: 30)
            let opt = make()
            try withBackend(device) {
                _ = try opt.update(p, gradients: g, gradientNorm: nil, maxGradientNorm: 1)
            }
            let kernels = Set(device.calls)
            #expect(kernels.contains("sumOfSquares"))
            #expect(kernels.contains("adamW") || kernels.contains("sgd"))
            #expect(kernels.isSubset(of: ["sumOfSquares", "adamW", "sgd", "fill"]), "\(kernels)")
        }
    }
}
