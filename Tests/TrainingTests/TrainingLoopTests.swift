import Checkpoint
import Datasets
import Foundation
import Layers
import Logging
import Optim
import SightlineTestSupport
import Tensor
import Testing
import Training
import TrainingTestSupport

/// A temporary directory removed at the end of the scope.
func temporaryDirectory(_ tag: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// The synthetic world shared by the loop tests (written once per process).
let sharedWorld: Result<URL, Error> = Result {
    try TinyRun.world(at: FileManager.default.temporaryDirectory.appendingPathComponent("tiny-world-\(getpid())"))
}

/// Captures log messages (to check that a skipped step is logged with its step).
final class CapturedLogs: @unchecked Sendable {
    let lock = NSLock()
    var messages: [(Logger.Level, String)] = []
    func append(_ level: Logger.Level, _ m: String) { lock.withLock { messages.append((level, m)) } }
    var all: [(Logger.Level, String)] { lock.withLock { messages } }
}

struct CapturingHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) { sink.append(level, message.description) }
}

/// A feed whose micro-batches `poisoned` (0-based, counted over the stream's life) carry NaN pixels.
func poisonedFeed(_ base: DataFeed, poisoned: @escaping (Int) -> Bool) -> DataFeed {
    final class Poisoned: BatchStream {
        let inner: any BatchStream
        let poisoned: (Int) -> Bool
        var served = 0
        init(_ inner: any BatchStream, _ p: @escaping (Int) -> Bool) {
            self.inner = inner
            poisoned = p
        }
        func next() throws -> PackedBatch {
            var b = try inner.next()
            defer { served += 1 }
            if poisoned(served), let img = b.images {
                b.images = Tensor.full(img.shape, .nan)
            }
            return b
        }
        func cursorJSON() throws -> String { try inner.cursorJSON() }
    }
    return DataFeed { cursor in Poisoned(try base.open(cursor), poisoned) }
}

func makeTrainer(
    _ dir: URL, total: Int, global: Int = 4, micro: Int = 2, every: Int = 2, resume: String = "never",
    feed: DataFeed? = nil, weights: MixtureWeights = MixtureWeights(), logs: CapturedLogs? = nil,
    maxNonFinite: Int = 3, sinks: [any MetricsSink] = [], prepare: (MultimodalModel) throws -> Void = { _ in }
) throws -> Trainer {
    let files = try sharedWorld.get()
    let model = try MultimodalModel(config: TinyRun.modelConfig())
    try prepare(model)
    var logger = Logger(label: "test")
    if let logs { logger = Logger(label: "test", factory: { _ in CapturingHandler(sink: logs) }) }
    let t = try Trainer(
        stage: "pretrain", model: model,
        optimization: TinyRun.optimization(total: total, global: global, micro: micro, maxNonFinite: maxNonFinite),
        checkpointing: CheckpointConfig(every: every, keepLast: 2, resume: resume),
        evaluation: EvalConfig(every: 0),
        checkpointDirectory: dir.appendingPathComponent("checkpoints").path,
        data: try feed ?? TinyRun.feed(files, microBatch: micro, weights: weights), sinks: sinks, logger: logger)
    t.handlesSignals = false
    return t
}

/// 4 micro-batches of 2 rows give the gradients of one batch of the same 8 rows, within 1e-6 relative
/// per tensor and for the whole gradient: the loss is the mean over all supervised tokens, not a mean
/// of means.
@Test func fourMicroBatchesOfTwoEqualOneBatchOfEight() throws {
    let dir = try temporaryDirectory("accumulate")
    defer { try? FileManager.default.removeItem(at: dir) }
    let files = try sharedWorld.get()
    let small = try makeTrainer(dir.appendingPathComponent("a"), total: 1, global: 8, micro: 2)
    let large = try makeTrainer(dir.appendingPathComponent("b"), total: 1, global: 8, micro: 8)
    let smallStream = try TinyRun.feed(files, microBatch: 2).open(nil)
    let largeStream = try TinyRun.feed(files, microBatch: 8).open(nil)
    let a = try small.accumulateGradients(microBatches: 4) { try smallStream.next() }
    let b = try large.accumulateGradients(microBatches: 1) { try largeStream.next() }
    #expect(a.supervisedTokens == b.supervisedTokens && a.supervisedTokens > 0)
    #expect(a.images == b.images && a.images > 0)
    #expect(abs(a.loss - b.loss) / b.loss <= 1e-6, "\(a.loss) vs \(b.loss)")
    // Micro-batch means differ from the global mean: the check can tell the two reductions apart.
    #expect(a.gradients.names == b.gradients.names && a.gradients.count > 40)
    let scale = b.gradients.map { $0.gradient.scalars.map { abs($0) }.max()! }.max()!
    var allA: [Float] = [], allB: [Float] = []
    for (name, g) in b.gradients {
        if isStructurallyZero(name) {
            // The key bias cancels in softmax: its gradient is rounding noise in both runs.
            #expect(a.gradients[name]!.scalars.allSatisfy { abs($0) <= 1e-6 * scale }, "\(name)")
            continue
        }
        let err = relativeError(a.gradients[name]!.scalars, g.scalars)
        #expect(err <= toleranceOfOneTensor, "\(name): \(err)")
        allA += a.gradients[name]!.scalars
        allB += g.scalars
    }
    #expect(relativeError(allA, allB) <= 1e-6, "whole gradient: \(relativeError(allA, allB))")
}

/// Tolerance of the accumulation checks, per tensor and for the whole gradient (and update): 1e-6
/// relative. Every reduction over the tokens of a batch (the bias and norm-weight gradients, the class
/// embedding's) accumulates in Double and is rounded once, so 4 partial sums of 96 tokens and one sum of
/// 384 differ by float32 rounding of the results only (with float32 accumulation the order of the
/// additions alone reached 1e-6..4e-6 of a tensor's largest entry).
let toleranceOfOneTensor = 1e-6

/// The update itself: one optimizer step each from the same weights. AdamW's first step is
/// `lr * g / (|g| + eps)`, which for eps much smaller than |g| is `lr * sign(g)` and would hide (or
/// amplify, near g = 0) gradient differences; eps = 1 makes the update linear in the gradient.
@Test func fourMicroBatchesOfTwoGiveTheUpdateOfOneBatchOfEight() throws {
    let dir = try temporaryDirectory("update")
    defer { try? FileManager.default.removeItem(at: dir) }
    var trainers: [Trainer] = []
    for micro in [2, 8] {
        let files = try sharedWorld.get()
        var o = TinyRun.optimization(total: 1, global: 8, micro: micro)
        o.eps = 1
        // A huge rate so each delta (~1000 x the clipped gradient) dwarfs the float spacing of the
        // weights it is added to: p_after - p_before then measures the update, not rounding of p.
        o.learningRate = .fixed(1000)
        o.weightDecay = 0
        let t = try Trainer(
            stage: "pretrain", model: try MultimodalModel(config: TinyRun.modelConfig()), optimization: o,
            checkpointing: CheckpointConfig(every: 0, resume: "never"), evaluation: EvalConfig(every: 0),
            checkpointDirectory: dir.appendingPathComponent("\(micro)").path,
            data: try TinyRun.feed(files, microBatch: micro))
        t.handlesSignals = false
        trainers.append(t)
    }
    let before = trainers[0].model.namedParameters().map { $0.1.data.scalars }
    for t in trainers { try t.run() }
    var compared = 0
    var allA: [Float] = [], allB: [Float] = []
    for (i, ((name, p), (_, q))) in zip(trainers[0].model.namedParameters(), trainers[1].model.namedParameters())
        .enumerated()
    where !isStructurallyZero(name) && q.isTrainable {
        let da = zip(p.data.scalars, before[i]).map { $0 - $1 }
        let db = zip(q.data.scalars, before[i]).map { $0 - $1 }
        guard db.contains(where: { $0 != 0 }) else {
            // Layers after the connector's feature level do not run: no gradient, no update in either.
            #expect(!da.contains { $0 != 0 }, "\(name)")
            continue
        }
        // p_after - p_before is exact only to the float spacing of the weights: each run rounds
        // p + delta once (half a spacing each). A tensor whose update is small next to its weights (the
        // class embedding) is compared within that resolution; every other within 1e-6 of its update.
        let spacing = zip(p.data.scalars, q.data.scalars).map { Double(max($0.ulp, $1.ulp)) }.max() ?? 0
        let scale = db.map { Double(abs($0)) }.max()!
        let worst = zip(da, db).map { Double(abs($0 - $1)) }.max()!
        #expect(
            worst <= toleranceOfOneTensor * scale + spacing,
            "\(name): max difference \(worst), update scale \(scale), weight spacing \(spacing)")
        allA += da
        allB += db
        compared += 1
    }
    #expect(compared > 40)
    #expect(relativeError(allA, allB) <= 1e-6, "whole update: \(relativeError(allA, allB))")
}

/// Parameters whose gradient is zero in exact arithmetic: an attention key bias adds the same value to
/// every score of a query, which softmax cancels.
func isStructurallyZero(_ name: String) -> Bool { name.hasSuffix("self_attn.k_proj.bias") }

/// Stopped after step 3 (a stop request saves a checkpoint), resumed with `resume: auto`: every later
/// loss and every parameter equal the uninterrupted run's, bit for bit.
@Test func resumedRunEqualsUninterruptedRunBitForBit() throws {
    // Pin the kernels' thread count for this test's task: another test may change the process-wide
    // setting while this one runs, and reductions are bit-exact only at a fixed thread count.
    try ComputeRuntime.$threadsOverride.withValue(ComputeRuntime.threads) { try resumeBitForBit() }
}

private func resumeBitForBit() throws {
    let dir = try temporaryDirectory("resume")
    defer { try? FileManager.default.removeItem(at: dir) }
    let straight = try makeTrainer(dir.appendingPathComponent("straight"), total: 6)
    let sink = RecordingSink()
    straight.sinks = [sink]
    let full = try straight.run()
    #expect(full.steps.map(\.step) == Array(1...6))
    #expect(sink.records.map(\.step) == Array(1...6))
    #expect(sink.records.allSatisfy { $0.stage == "pretrain" && $0.scalars["loss"] != nil && $0.scalars["learning_rate"] != nil })
    #expect(full.steps.last!.loss < full.steps.first!.loss, "loss falls: \(full.steps.map(\.loss))")

    let first = try makeTrainer(dir.appendingPathComponent("split"), total: 6)
    first.onStep = { r in if r.step == 3 { first.stop.request() } }
    let part = try first.run()
    #expect(part.finalStep == 3 && part.stoppedBy == "request")
    let second = try makeTrainer(dir.appendingPathComponent("split"), total: 6, resume: "auto")
    let rest = try second.run()
    #expect(rest.resumedFrom == 3 && rest.finalStep == 6)
    let losses = (part.steps + rest.steps).map { $0.loss.bitPattern }
    #expect(losses == full.steps.map { $0.loss.bitPattern })
    #expect((part.steps + rest.steps).map { $0.zLoss.bitPattern } == full.steps.map { $0.zLoss.bitPattern })
    for ((name, p), (_, q)) in zip(straight.model.namedParameters(), second.model.namedParameters()) {
        #expect(p.data.scalars == q.data.scalars, "\(name) differs after resume")
    }
    #expect(second.optimizer.step == straight.optimizer.step)
}

/// A batch with NaN pixels: the step is skipped, counted, logged with its step; training continues and
/// the parameters stay finite.
@Test func nonFiniteBatchIsSkippedCountedAndLogged() throws {
    let dir = try temporaryDirectory("nan")
    defer { try? FileManager.default.removeItem(at: dir) }
    let files = try sharedWorld.get()
    let logs = CapturedLogs()
    // Captions only, so every micro-batch has images; micro-batches 4 and 5 make up step 3.
    let feed = poisonedFeed(try TinyRun.feed(files, microBatch: 2, weights: MixtureWeights(interleaved: 0, imageCaption: 1, textOnly: 0))) {
        $0 == 4
    }
    let t = try makeTrainer(dir, total: 5, feed: feed, logs: logs)
    let sink = RecordingSink()
    t.sinks = [sink]
    let s = try t.run()
    #expect(s.finalStep == 5)
    #expect(s.steps.map(\.skipped) == [false, false, true, false, false])
    #expect(s.skippedSteps == 1 && t.optimizer.skippedSteps == 1 && t.optimizer.step == 4)
    #expect(sink.records[2].scalars["skipped_steps"] == 1)
    #expect(s.steps[3].loss.isFinite && s.steps[4].loss.isFinite)
    #expect(t.model.namedParameters().allSatisfy { $0.1.data.scalars.allSatisfy(\.isFinite) })
    // The memory estimate is logged once, before the first update.
    #expect(logs.all.filter { $0.0 == .info && $0.1.contains("memory estimate: parameters") }.count == 1)
    let warnings = logs.all.filter { $0.0 == .warning }.map(\.1)
    #expect(warnings.count == 1 && warnings[0].contains("step 3") && warnings[0].contains("skipped"), "\(warnings)")
}

/// Non-finite steps N times in a row stop the run with an error naming the step and the parameter with
/// the largest gradient.
@Test func tooManyNonFiniteStepsInARowAbortWithTheStepAndParameter() throws {
    let dir = try temporaryDirectory("abort")
    defer { try? FileManager.default.removeItem(at: dir) }
    let files = try sharedWorld.get()
    let feed = poisonedFeed(try TinyRun.feed(files, microBatch: 2, weights: MixtureWeights(interleaved: 0, imageCaption: 1, textOnly: 0))) {
        $0 >= 2
    }
    let t = try makeTrainer(dir, total: 10, feed: feed, maxNonFinite: 3)
    do {
        try t.run()
        Issue.record("expected the run to stop")
    } catch let e as TrainingError {
        let m = e.description
        #expect(m.contains("step 4") && m.contains("3 non-finite steps in a row"), "\(m)")
        let names = t.model.namedParameters().map(\.0)
        #expect(names.contains { m.contains("largest gradient is \($0) ") }, "\(m)")
    }
    #expect(t.globalStep == 4 && t.optimizer.skippedSteps == 3)
}

/// `lr: auto` resolves MM1's law on the decoder's parameter count.
@Test func autoLearningRateUsesTheDecoderParameterCount() throws {
    let model = try MultimodalModel(config: TinyRun.modelConfig())
    var o = TinyRun.optimization(total: 2)
    o.learningRate = .auto
    let dir = try temporaryDirectory("auto")
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = try Trainer(
        stage: "pretrain", model: model, optimization: o, checkpointDirectory: dir.path,
        data: try TinyRun.feed(try sharedWorld.get(), microBatch: 2))
    let n = model.languageModel.parameterCount()
    #expect(n < model.parameterCount())
    #expect(t.peakLearningRate == exp(-0.4214 * log(Double(n)) - 0.5535))
    o.globalBatch = 3
    #expect(throws: TrainingError.self) { try o.validate() }
}

/// The loop's configs decode with every default from an empty object and round-trip.
@Test func loopConfigsDecodeDefaultsAndRoundTrip() throws {
    let empty = Data("{}".utf8)
    let o = try JSONDecoder().decode(OptimizationConfig.self, from: empty)
    #expect(o == OptimizationConfig())
    #expect(o.zLoss == 1e-4 && o.clipNorm == 1 && o.minLearningRateRatio == 0.1 && o.learningRate == .auto)
    #expect(try JSONDecoder().decode(CheckpointConfig.self, from: empty) == CheckpointConfig())
    #expect(try JSONDecoder().decode(EvalConfig.self, from: empty) == EvalConfig())
    let m = TinyRun.modelConfig()
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    let data = try e.encode(m)
    let back = try JSONDecoder().decode(ModelConfig.self, from: data)
    #expect(try e.encode(back) == data)
    #expect(back.connector == m.connector && back.vision == m.vision && back.visionTraining == m.visionTraining)
    let text = String(decoding: try JSONEncoder().encode(o), as: UTF8.self)
    #expect(text.contains("\"global_batch\"") && text.contains("\"learning_rate\":\"auto\""))
}

/// Periodic evaluation on held-out data: loss and perplexity = exp(loss) every `every` steps, recorded
/// and flushed to the sinks; the same held-out batches each time (a fixed model gives a fixed loss).
@Test func periodicEvaluationRecordsLossAndPerplexity() throws {
    let dir = try temporaryDirectory("eval")
    defer { try? FileManager.default.removeItem(at: dir) }
    let files = try sharedWorld.get()
    let sink = RecordingSink()
    let model = try MultimodalModel(config: TinyRun.modelConfig())
    let t = try Trainer(
        stage: "pretrain", model: model, optimization: TinyRun.optimization(total: 4),
        checkpointing: CheckpointConfig(every: 0, resume: "never"), evaluation: EvalConfig(every: 2, batches: 2),
        checkpointDirectory: dir.path, data: try TinyRun.feed(files, microBatch: 2),
        heldOut: try TinyRun.feed(files, microBatch: 2, seed: 9), sinks: [sink])
    t.handlesSignals = false
    let held = try TinyRun.feed(files, microBatch: 2, seed: 9)
    let before = try t.evaluate(held)
    #expect(try t.evaluate(held) == before)
    let s = try t.run()
    #expect(s.evaluations.map(\.step) == [2, 4])
    for e in s.evaluations { #expect(e.perplexity == exp(e.loss) && e.loss.isFinite) }
    #expect(s.evaluations.last!.loss < before.loss, "held-out loss falls: \(before.loss) -> \(s.evaluations.map(\.loss))")
    let evalRecords = sink.records.filter { $0.scalars["eval_loss"] != nil }
    #expect(evalRecords.map(\.step) == [2, 4])
    #expect(sink.flushes >= 3)
    #expect(model.isTraining, "back in training mode after evaluating")
}

/// LoRA adapters with dropout on the decoder's q_proj: the adapters' dropout generators are saved and
/// restored, so a stopped and resumed run still logs the uninterrupted run's losses bit for bit.
@Test func resumeRestoresLoRADropoutGenerators() throws {
    let dir = try temporaryDirectory("lora-resume")
    defer { try? FileManager.default.removeItem(at: dir) }
    func lora(_ m: MultimodalModel) throws {
        var g = RandomGenerator(seed: 5)
        for (name, module) in m.namedModules() where name.hasPrefix("language_model.") && name.hasSuffix("q_proj") {
            try (module as! Linear).attachLoRA(rank: 2, scale: 2, dropout: 0.3, generator: &g)
        }
    }
    let straight = try makeTrainer(dir.appendingPathComponent("straight"), total: 4, prepare: lora)
    let full = try straight.run()
    let first = try makeTrainer(dir.appendingPathComponent("split"), total: 4, prepare: lora)
    first.onStep = { r in if r.step == 2 { first.stop.request() } }
    let part = try first.run()
    let second = try makeTrainer(dir.appendingPathComponent("split"), total: 4, resume: "auto", prepare: lora)
    let rest = try second.run()
    #expect(part.finalStep == 2 && rest.finalStep == 4)
    #expect((part.steps + rest.steps).map { $0.loss.bitPattern } == full.steps.map { $0.loss.bitPattern })
    // Without restoring the generators the masks would repeat the first steps' draws: the state moved.
    let saved = try #require(try CheckpointDirectory(dir.appendingPathComponent("split/checkpoints").path).load(step: 2))
    let rng = try #require(saved.trainer.documents["rng_states"])
    #expect(rng.contains("q_proj.lora_dropout"))
}
