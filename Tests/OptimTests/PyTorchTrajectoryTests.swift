import Foundation
import Optim
import SightlineTestSupport
import Tensor
import Testing

/// Replays the 50-step trajectories of scripts/make_optim_fixtures.py (PyTorch float32, clipping at
/// norm 1, cosine with warm-up) and compares the parameters after every step: within 1e-6 relative.
@Suite struct PyTorchTrajectory {
    /// - Parameter fusedClip: clip inside the update (`maxGradientNorm:`) instead of with
    ///   `clipGradientNorm` before it.
    func replay(
        _ name: String, fusedClip: Bool = false,
        makeOptimizer: (Fixture, LearningRateSchedule) throws -> any Optimizer
    ) throws -> (worst: Double, worstNorm: Double, final: [Float]) {
        let f = try loadFixtureCase(name, group: "optim")
        let steps = try f.int("steps")
        let schedule = LearningRateSchedule.cosine(
            warmup: try f.int("warmup"), total: steps, floor: try f.double("floor"))
        let w = Parameter(try f.tensor("init_w")), b = Parameter(try f.tensor("init_b"))
        let params = [("w", w), ("b", b)]
        let gw = try f.tensor("grads_w"), gb = try f.tensor("grads_b")
        let tw = try f.tensor("traj_w"), tb = try f.tensor("traj_b")
        let norms = try f.tensor("norms").scalars
        let opt = try makeOptimizer(f, schedule)
        let maxNorm = Float(try f.double("max_norm"))
        var worst = 0.0, worstNorm = 0.0
        for step in 0..<steps {
            let gwStep = try gw.narrow(axis: 0, start: step, length: 1).reshaped([4, 3])
            let gbStep = try gb.narrow(axis: 0, start: step, length: 1).reshaped([4])
            var grads = try gradientsOf(["w": gwStep, "b": gbStep])
            let norm: Float
            if fusedClip {
                let outcome = try opt.update(params, gradients: grads, gradientNorm: nil, maxGradientNorm: maxNorm)
                norm = outcome.gradientNorm
                #expect(outcome.report?.scheduleMultiplier == schedule.multiplier(at: step))
            } else {
                norm = clipGradientNorm(&grads, maxNorm: maxNorm)
                try opt.update(params, gradients: grads, gradientNorm: norm, maxGradientNorm: nil)
            }
            #expect(opt.step == step + 1)
            worstNorm = max(worstNorm, Double(abs(norm - norms[step]) / norms[step]))
            let refW = try tw.narrow(axis: 0, start: step, length: 1).reshaped([4, 3])
            let refB = try tb.narrow(axis: 0, start: step, length: 1).reshaped([4])
            worst = max(
                worst, relativeError(w.data.scalars, refW.scalars),
                relativeError(b.data.scalars, refB.scalars))
        }
        return (worst, worstNorm, w.data.scalars + b.data.scalars)
    }

    @Test(arguments: ["adamw_pytorch", "adamw_decoupled"])
    func adamW(_ name: String) throws {
        func make(_ f: Fixture, _ schedule: LearningRateSchedule) throws -> any Optimizer {
            AdamW(
                .init(
                    learningRate: try f.double("lr"), beta1: try f.double("beta1"),
                    beta2: try f.double("beta2"),
                    eps: try f.double("eps"), weightDecay: try f.double("weight_decay"),
                    semantics: AdamW.DecaySemantics(rawValue: try f.string("semantics"))!, schedule: schedule))
        }
        let r = try replay(name, makeOptimizer: make)
        #expect(r.worst <= 1e-6, "\(name): worst relative parameter error over 50 steps \(r.worst)")
        #expect(r.worstNorm <= 1e-6, "\(name): worst relative pre-clip norm error \(r.worstNorm)")
        // Clipping fused into the update gives the same bits as clipping the gradients first.
        let fused = try replay(name, fusedClip: true, makeOptimizer: make)
        #expect(fused.final == r.final)
    }

    /// PyTorch's default (every parameter decays, the bias too) with the bias in its own group at half
    /// the rate: `ParameterGroups.decayEverything` plus a group multiplier, and the rates reported.
    @Test func adamWDecayingEverythingWithGroupMultipliers() throws {
        let r = try replay("adamw_decay_all_groups") { f, schedule in
            let groups = ParameterGroups(
                weightDecay: try f.double("weight_decay"), decayVectorsAndNorms: true,
                groups: [
                    ParameterGroup(
                        name: "bias", prefixes: ["b"], learningRateMultiplier: try f.double("bias_lr_multiplier"))
                ])
            #expect(groups.settings(for: "b", shape: [4]) == GroupSettings(group: "bias", weightDecay: 0.1, learningRateMultiplier: 0.5))
            return AdamW(
                .init(
                    learningRate: try f.double("lr"), beta1: try f.double("beta1"), beta2: try f.double("beta2"),
                    eps: try f.double("eps"), groups: groups, schedule: schedule))
        }
        #expect(r.worst <= 1e-6, "worst relative parameter error over 50 steps \(r.worst)")
        #expect(r.worstNorm <= 1e-6, "worst relative pre-clip norm error \(r.worstNorm)")
        // Without the per-group choice (the default exempts the 1-D bias) the trajectory departs.
        let exempt = try replay("adamw_decay_all_groups") { f, schedule in
            AdamW(.init(learningRate: try f.double("lr"), weightDecay: try f.double("weight_decay"), schedule: schedule))
        }
        #expect(exempt.worst > 1e-4, "the fixture must distinguish the two conventions (\(exempt.worst))")
    }

    @Test func sgdWithMomentum() throws {
        func make(_ f: Fixture, _ schedule: LearningRateSchedule) throws -> any Optimizer {
            SGD(
                .init(
                    learningRate: try f.double("lr"), momentum: try f.double("momentum"),
                    weightDecay: try f.double("weight_decay"), schedule: schedule))
        }
        let r = try replay("sgd_momentum", makeOptimizer: make)
        #expect(r.worst <= 1e-6, "sgd: worst relative parameter error over 50 steps \(r.worst)")
        let fused = try replay("sgd_momentum", fusedClip: true, makeOptimizer: make)
        #expect(fused.final == r.final)
    }
}

/// Gradients holding the given tensors (built through valueAndGradient of a linear function).
func gradientsOf(_ tensors: [String: Tensor]) throws -> Gradients {
    var g = Gradients()
    for name in tensors.keys.sorted() { g = try merged(g, name, tensors[name]!) }
    return g
}
