import Checkpoint
import Foundation
import Layers
import Optim
import SightlineTestSupport
import TensorFiles
import Testing
import Training

/// Save at step k through a real training checkpoint on disk, restore into fresh objects, continue:
/// parameters identical bit for bit to an uninterrupted run.
@Suite struct ResumeThroughCheckpoint {
    func makeModel() -> Sequential {
        Sequential([Linear(6, 16, seed: 1), Lambda { gelu($0) }, Linear(16, 3, seed: 2)])
    }

    func step(_ model: Sequential, _ opt: AdamW, _ i: Int, _ rng: inout RandomGenerator) throws {
        let x = Tensor.normal([8, 6], generator: &rng), y = Tensor.normal([8, 3], generator: &rng)
        let params = model.namedParameters()
        let (_, grads) = try valueAndGradient(at: params) { try mseLoss(model(x), y) }
        // The schedule is the optimizer's (config); it reads the restored `step`.
        let outcome = try opt.update(params, gradients: grads, gradientNorm: nil, maxGradientNorm: 1)
        #expect(outcome.report?.step == i + 1)
    }

    @Test func resumedRunEqualsUninterruptedBitForBit() throws {
        let config = AdamW.Config(
            learningRate: 3e-3, weightDecay: 0.05, semantics: .decoupled,
            schedule: .cosine(warmup: 2, total: 12, floor: 0.1))
        let straight = makeModel()
        let straightOpt = AdamW(config)
        var rng = RandomGenerator(seed: 5)
        for i in 0..<10 { try step(straight, straightOpt, i, &rng) }

        let first = makeModel()
        let firstOpt = AdamW(config)
        var rng1 = RandomGenerator(seed: 5)
        for i in 0..<5 { try step(first, firstOpt, i, &rng1) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoints = try CheckpointDirectory(dir, keep: 2)
        var trainer = TrainerState(globalStep: 5)
        try trainer.documents.set(rng1, for: TrainerState.Key.rngStates)
        let ckpt = TrainingCheckpoint(
            model: NamedTensors(first.stateDict()), optimizer: try OptimizerState(firstOpt), trainer: trainer)
        _ = try checkpoints.save(ckpt, step: 5)

        let loaded = try #require(try checkpoints.loadLatest())
        let resumed = makeModel()
        resumed.resetParameters(seed: 999)  // different weights until the checkpoint is loaded
        for (name, p) in resumed.namedParameters() { p.data = try #require(loaded.model[name]) }
        let resumedOpt = AdamW(config)
        try loaded.optimizer.restore(into: resumedOpt)
        #expect(resumedOpt.step == 5)
        var rng2 = try #require(
            try loaded.trainer.documents.decode(RandomGenerator.self, TrainerState.Key.rngStates))
        for i in 5..<10 { try step(resumed, resumedOpt, i, &rng2) }

        for ((name, a), (_, b)) in zip(straight.namedParameters(), resumed.namedParameters()) {
            #expect(a.data.scalars == b.data.scalars, "\(name) differs after resume")
        }
    }
}
