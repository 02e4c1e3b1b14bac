import Checkpoint
import Datasets
import Dispatch
import Foundation
import Language
import Layers
import Logging
import Optim
import TensorFiles

/// The training loop of one stage: micro-batches accumulated to the global batch, AdamW with a
/// warm-up + cosine schedule, clipping, z-loss, a non-finite guard, periodic evaluation and
/// checkpoints, a clean stop on SIGINT/SIGTERM, and exact resume.
///
/// One optimizer step:
/// 1. `accumulationSteps` micro-batches run forward and backward on their loss SUMS (cross-entropy +
///    z-loss); Optim's `GradientAccumulator` adds the gradients and divides once by the global
///    batch's supervised-token count, so the step's loss is the mean over all supervised tokens of
///    the global batch (never a mean of micro-batch means);
/// 2. the global gradient norm is clipped to `clip_norm`;
/// 3. a non-finite loss or norm skips the update (counted, logged with its step); `max_non_finite_in_a_row`
///    such steps in a row stop the run with a `TrainingError` naming the step and the parameter with
///    the largest gradient;
/// 4. AdamW updates with the schedule's multiplier at this step (0-based) and per-part multipliers.
///
/// Exact resume: a checkpoint holds the model, AdamW's moments and step count, the global step, the
/// data cursor (`BatchStream.cursorJSON`), the loop's generator and every `Dropout` module's
/// generator, and the guard's counters; with `resume: auto` a run continues from `latest` and logs
/// the same losses, bit for bit, as an uninterrupted run with the same thread count.
public final class Trainer {
    /// Scalar names the loop records (the metrics sinks receive these keys).
    public enum Metric {
        public static let loss = "loss"
        public static let zLoss = "z_loss"
        public static let learningRate = "learning_rate"
        public static let gradNorm = "grad_norm"
        public static let tokensPerSecond = "tokens_per_second"
        public static let imagesPerSecond = "images_per_second"
        public static let supervisedTokens = "supervised_tokens"
        public static let skippedSteps = "skipped_steps"
        public static let stepSeconds = "step_seconds"
        public static let evalLoss = "eval_loss"
        public static let evalPerplexity = "eval_perplexity"
    }

    /// What a step did.
    public struct StepRecord: Equatable, Sendable {
        /// Global step (1-based) after this step.
        public var step: Int
        /// Mean cross-entropy over the global batch's supervised tokens.
        public var loss: Double
        /// Mean z-loss term.
        public var zLoss: Double
        /// Pre-clip global gradient norm.
        public var gradNorm: Double
        /// Learning rate applied (peak x schedule), 0 when skipped.
        public var learningRate: Double
        /// Whether the update was skipped as non-finite.
        public var skipped: Bool
    }

    /// How a run ended.
    public struct Summary: Sendable {
        /// Global step at the end.
        public var finalStep: Int
        /// The step the run started from (0, or the resumed checkpoint's).
        public var resumedFrom: Int
        /// The steps this call ran.
        public var steps: [StepRecord]
        /// Steps skipped as non-finite over the whole run (resumed counts included).
        public var skippedSteps: Int
        /// The signal that stopped the run early, if any.
        public var stoppedBy: String?
        /// Evaluations as (step, loss, perplexity).
        public var evaluations: [(step: Int, loss: Double, perplexity: Double)]
        /// The last checkpoint written, if any.
        public var lastCheckpoint: String?
    }

    public let stage: String
    public let model: MultimodalModel
    public let optimization: OptimizationConfig
    public let checkpointing: CheckpointConfig
    public let evaluation: EvalConfig
    public let checkpointDirectory: String
    public let data: DataFeed
    public let heldOut: DataFeed?
    public var sinks: [any MetricsSink]
    public let stop: StopRequest
    public var logger: Logger
    /// JSON documents saved in every checkpoint's trainer group (the resolved run config, ...).
    public var extraDocuments: JSONDocuments
    /// Called after each step (tests and progress displays).
    public var onStep: ((StepRecord) -> Void)?
    /// Whether `run()` routes SIGINT/SIGTERM to `stop` while it runs (default true).
    public var handlesSignals = true
    /// How gradients, checkpoints and failures are shared with other data-parallel processes (a no-op
    /// in a single process). See `DataParallel`.
    public let dataParallel: DataParallel

    /// The resolved peak learning rate.
    public let peakLearningRate: Double
    public let optimizer: AdamW
    /// Optimizer steps taken, applied or skipped (Optim's `globalStep`: the log and checkpoint index).
    public var globalStep: Int { optimizer.globalStep }
    /// The loop's own generator (saved and restored; stages draw their sampling from it).
    public var generator: RandomGenerator
    private var consecutiveNonFinite = 0
    private var memoryLogged = false

    /// Wall-clock seconds of the phases of the last optimizer step (what the benchmarks split a step
    /// into; kept out of `StepRecord`, which stays bit-comparable between runs).
    public struct StepPhases: Equatable, Sendable {
        /// The micro-batches' forward passes (their loss closures).
        public var forward: Double = 0
        /// Their backward passes and the gradient accumulation.
        public var backward: Double = 0
        /// Global norm, clipping and the AdamW update.
        public var optimizer: Double = 0

        public init(forward: Double = 0, backward: Double = 0, optimizer: Double = 0) {
            self.forward = forward
            self.backward = backward
            self.optimizer = optimizer
        }
    }

    /// The phases of the last `accumulateGradients` (forward, backward) and step (optimizer).
    public private(set) var lastPhases = StepPhases()

    /// Names of the loop state documents inside the trainer group of a checkpoint.
    enum Doc {
        static let loop = "loop_state"
        static let rankCursors = "data_cursors"
    }

    /// The data cursor of every data-parallel rank at the checkpoint.
    struct RankCursors: Codable {
        var worldSize: Int
        var cursors: [String]
    }

    struct LoopState: Codable {
        var stage: String
        var consecutiveNonFinite: Int
        var peakLearningRate: Double
    }

    struct RNGStates: Codable {
        var loop: RandomGenerator
        var dropout: [String: RandomGenerator]
    }

    /// - Parameters:
    ///   - stage: the stage name the metrics carry ("pretrain", ...).
    ///   - checkpointDirectory: where step-numbered checkpoints and `latest` go.
    ///   - data: the training micro-batches (`optimization.micro_batch` rows each).
    ///   - heldOut: held-out micro-batches, opened from the start at every evaluation.
    ///   - seed: the loop generator's seed.
    ///   - dataParallel: the data-parallel job; nil: `DataParallel.automatic()` (the MPI job when a
    ///     launcher started this process, else a single process).
    /// - Throws: `TrainingError` for an invalid optimization config or a global batch that does not
    ///   split over the ranks; `CollectiveError` when launched but Open MPI cannot be loaded.
    public init(
        stage: String, model: MultimodalModel, optimization: OptimizationConfig,
        checkpointing: CheckpointConfig = CheckpointConfig(), evaluation: EvalConfig = EvalConfig(),
        checkpointDirectory: String, data: DataFeed, heldOut: DataFeed? = nil, sinks: [any MetricsSink] = [],
        stop: StopRequest = StopRequest(), logger: Logger = Logger(label: "sightline.training"),
        seed: UInt64 = 0, dataParallel: DataParallel? = nil
    ) throws {
        try optimization.validate()
        self.dataParallel = try dataParallel ?? .automatic()
        let ranks = self.dataParallel.worldSize
        guard optimization.globalBatch % (optimization.microBatch * ranks) == 0 else {
            throw TrainingError(
                "optimization.global_batch: \(optimization.globalBatch) must be a multiple of micro_batch \(optimization.microBatch) x \(ranks) data-parallel ranks"
            )
        }
        self.stage = stage
        self.model = model
        self.optimization = optimization
        self.checkpointing = checkpointing
        self.evaluation = evaluation
        self.checkpointDirectory = checkpointDirectory
        self.data = data
        self.heldOut = heldOut
        self.sinks = sinks
        self.stop = stop
        self.logger = logger
        self.extraDocuments = JSONDocuments()
        self.generator = RandomGenerator(seed: seed)
        let n = model.languageModelParameterCount
        peakLearningRate = optimization.learningRate.resolve(languageModelParameters: n)
        if case .auto = optimization.learningRate {
            logger.info(
                "learning_rate auto: MM1 law exp(-0.4214 ln N - 0.5535) with N = \(n) decoder parameters gives \(peakLearningRate)"
            )
        }
        optimizer = AdamW(
            AdamW.Config(
                learningRate: peakLearningRate, beta1: optimization.beta1, beta2: optimization.beta2,
                eps: optimization.eps, semantics: optimization.decaySemantics,
                groups: ParameterGroups(
                    weightDecay: optimization.weightDecay,
                    learningRateMultipliers: optimization.learningRateMultipliers.byPrefix),
                schedule: optimization.schedule))
    }

    // MARK: Checkpoints

    /// Dropout modules of the model by name, LoRA adapters' input dropouts included
    /// (`<linear>.lora_dropout`): their generators are part of the run state.
    var dropoutModules: [(String, Dropout)] {
        model.namedModules().flatMap { n, m -> [(String, Dropout)] in
            if let d = m as? Dropout { return [(n, d)] }
            if let lin = m as? Linear, let d = lin.lora?.dropout { return [(n + ".lora_dropout", d)] }
            return []
        }
    }

    /// The full run state at the current step.
    public func makeCheckpoint(cursorJSON: String) throws -> TrainingCheckpoint {
        var trainer = TrainerState(globalStep: globalStep, documents: extraDocuments)
        // Every rank's cursor (rank 0's also under the single-process key).
        let cursors = try dataParallel.gatherCursors(cursorJSON)
        try trainer.documents.setJSON(cursors[0], for: TrainerState.Key.dataCursor)
        try trainer.documents.set(RankCursors(worldSize: cursors.count, cursors: cursors), for: Doc.rankCursors)
        try trainer.documents.set(
            RNGStates(loop: generator, dropout: Dictionary(uniqueKeysWithValues: dropoutModules.map { ($0.0, $0.1.generator) })),
            for: TrainerState.Key.rngStates)
        try trainer.documents.set(
            LoopState(stage: stage, consecutiveNonFinite: consecutiveNonFinite, peakLearningRate: peakLearningRate),
            for: Doc.loop)
        // The architecture and the adapters, so that `weights export` rebuilds the model from the file alone.
        try trainer.documents.set(model.config, for: ModelDocuments.modelConfig)
        if let lora = try model.attachedLoRAConfig() { try trainer.documents.set(lora, for: ModelDocuments.lora) }
        return TrainingCheckpoint(
            model: NamedTensors(model.stateDict()),
            optimizer: try dataParallel.optimizerState(optimizer, parameters: model.trainableParameters()),
            trainer: trainer)
    }

    /// Restores model, optimizer, step, generators and guard state from `checkpoint`.
    /// - Returns: the saved data cursor.
    /// - Throws: `TrainingError` naming the key (and both shapes) for a missing or mis-shaped tensor.
    public func restore(_ checkpoint: TrainingCheckpoint, from path: String) throws -> String? {
        var missing: [String] = []
        for (name, tensor) in model.stateDict() {
            guard let saved = checkpoint.model[name] else {
                missing.append(name)
                continue
            }
            guard saved.shape == tensor.shape else {
                throw TrainingError(
                    "\(path): model/\(name) has shape \(saved.shape), the model expects \(tensor.shape)")
            }
            model.tensorSlot(named: name)!.set(saved)
        }
        guard missing.isEmpty else {
            throw TrainingError(
                "\(path): \(missing.count) model tensor(s) missing, e.g. \(missing.prefix(3).joined(separator: ", "))")
        }
        try dataParallel.restoreOptimizer(
            checkpoint.optimizer, into: optimizer, parameters: model.trainableParameters())
        guard optimizer.globalStep == checkpoint.trainer.globalStep else {
            throw TrainingError(
                "\(path): trainer global_step \(checkpoint.trainer.globalStep) but the optimizer state counts \(optimizer.globalStep) steps (applied + skipped)"
            )
        }
        let docs = checkpoint.trainer.documents
        if let rng = try docs.decode(RNGStates.self, TrainerState.Key.rngStates) {
            generator = rng.loop
            for (name, d) in dropoutModules {
                if let g = rng.dropout[name] { d.generator = g }
            }
        }
        if let loop = try docs.decode(LoopState.self, Doc.loop) {
            consecutiveNonFinite = loop.consecutiveNonFinite
            if loop.stage != stage {
                logger.warning("\(path) was written by stage \(loop.stage); continuing it as \(stage)")
            }
        }
        if let saved = try docs.decode(RankCursors.self, Doc.rankCursors), saved.worldSize > 1 || dataParallel.isDistributed {
            if saved.worldSize == dataParallel.worldSize { return saved.cursors[dataParallel.rank] }
            logger.warning(
                "\(path) was written by \(saved.worldSize) data-parallel rank(s), resuming on \(dataParallel.worldSize): the data feed re-shards the saved positions"
            )
            return try data.reshard(saved.cursors, dataParallel.rank, dataParallel.worldSize)
        }
        return docs[TrainerState.Key.dataCursor]
    }

    // MARK: The run

    /// Runs (or resumes) the stage up to `total_steps`, or until a stop request.
    /// - Returns: the summary; a stop by signal returns normally after saving.
    /// - Throws: `TrainingError` after too many non-finite steps in a row; data, checkpoint and model errors.
    @discardableResult
    public func run() throws -> Summary {
        do {
            return try runLoop()
        } catch {
            // One rank's failure ends every rank, with this rank and the cause in the message.
            dataParallel.fail(error)
            throw error
        }
    }

    private func runLoop() throws -> Summary {
        if handlesSignals { stop.listenForSignals() }
        defer { if handlesSignals { stop.stopListening() } }
        let directory = try CheckpointDirectory(checkpointDirectory, keep: checkpointing.keepLast)
        var cursor: String? = nil
        switch checkpointing.resume {
        case "never": break
        case "auto":
            if let (_, file) = try directory.latest() {
                cursor = try restore(TrainingCheckpoint.read(from: file), from: file)
                logger.info("resumed \(stage) from \(file) at step \(globalStep)")
            }
        default:
            let file = checkpointing.resume
            cursor = try restore(TrainingCheckpoint.read(from: file), from: file)
            logger.info("resumed \(stage) from \(file) at step \(globalStep)")
        }
        let resumedFrom = globalStep
        try dataParallel.start(model: model)
        if dataParallel.isDistributed && dataParallel.isWriter {
            let c = dataParallel.config
            logger.info(
                "\(stage): data parallel over \(dataParallel.worldSize) ranks: \(c.bucketMegabytes) MiB buckets, overlap \(c.overlap && c.zeroStage == 0 ? "on" : "off"), \(c.zeroStage == 1 ? "ZeRO-1 (each rank keeps the optimizer state of its share)" : "optimizer state on every rank")"
            )
        }
        let stream = try data.open(cursor)
        var summary = Summary(
            finalStep: globalStep, resumedFrom: resumedFrom, steps: [], skippedSteps: optimizer.skippedSteps,
            stoppedBy: nil, evaluations: [], lastCheckpoint: nil)
        model.train()
        while globalStep < optimization.totalSteps {
            let record = try step(stream)
            summary.steps.append(record)
            onStep?(record)
            let s = globalStep
            if evaluation.every > 0, s % evaluation.every == 0, let held = heldOut {
                let (loss, ppl) = try evaluate(held)
                summary.evaluations.append((s, loss, ppl))
                for sink in writerSinks {
                    try sink.record(
                        stage: stage, step: s, scalars: [Metric.evalLoss: loss, Metric.evalPerplexity: ppl])
                    try sink.flush()
                }
                logger.info("\(stage) step \(s): eval loss \(loss), perplexity \(ppl)")
            }
            let stopping = try dataParallel.any(stop.isRequested)
            let due = checkpointing.every > 0 && s % checkpointing.every == 0
            if due || stopping || s == optimization.totalSteps {
                // Every rank takes part in making it (cursors, ZeRO-1 moments); rank 0 writes it.
                let checkpoint = try makeCheckpoint(cursorJSON: stream.cursorJSON())
                if dataParallel.isWriter {
                    summary.lastCheckpoint = try directory.save(checkpoint, step: s)
                    logger.info("\(stage) step \(s): checkpoint \(summary.lastCheckpoint!)")
                }
            }
            if stopping {
                summary.stoppedBy = stop.receivedSignal ?? "request"
                logger.notice("\(stage): stopped by \(summary.stoppedBy!) after step \(s); checkpoint saved")
                break
            }
        }
        for sink in writerSinks { try sink.flush() }
        summary.finalStep = globalStep
        summary.skippedSteps = optimizer.skippedSteps
        return summary
    }

    /// Gradients of one global batch: each micro-batch's loss SUM (cross-entropy + z-loss) is
    /// differentiated, Optim's `GradientAccumulator` adds the gradients and divides once by the total
    /// supervised-token count.
    public struct BatchGradients {
        /// Mean gradient over the global batch's supervised tokens (before clipping).
        public var gradients: Gradients
        /// Sum of cross-entropy and of the z-loss term over the supervised tokens.
        public var lossSum: Double
        public var zLossSum: Double
        /// Supervised tokens, all tokens, sub-images.
        public var supervisedTokens: Int
        public var tokens: Int
        public var images: Int
        /// Mean cross-entropy (0 without supervised tokens).
        public var loss: Double { supervisedTokens > 0 ? lossSum / Double(supervisedTokens) : 0 }
        /// Mean z-loss term.
        public var zLoss: Double { supervisedTokens > 0 ? zLossSum / Double(supervisedTokens) : 0 }
    }

    /// The accumulated gradients of `microBatches` batches drawn from `next`.
    public func accumulateGradients(microBatches: Int, next: () throws -> PackedBatch) throws -> BatchGradients {
        try accumulateGradients(microBatches: microBatches, parameters: model.trainableParameters(), next: next)
    }

    /// `accumulateGradients` over `parameters` (the model's trainable parameters, listed once per
    /// step by the caller: listing them builds every dotted name).
    func accumulateGradients(
        microBatches: Int, parameters: [(String, Parameter)], next: () throws -> PackedBatch
    ) throws -> BatchGradients {
        let z = Float(optimization.zLoss)
        var accumulator = GradientAccumulator()
        var out = BatchGradients(
            gradients: Gradients(), lossSum: 0, zLossSum: 0, supervisedTokens: 0, tokens: 0, images: 0)
        lastPhases = StepPhases()
        for micro in 0..<microBatches {
            let batch = try next()
            out.tokens += batch.shape.batch * batch.shape.length
            out.images += batch.images?.shape[0] ?? 0
            var count = 0
            var sums = (0.0, 0.0)
            let start = DispatchTime.now().uptimeNanoseconds
            var forwardEnd = start
            // The last micro-batch hands each finished gradient to the data-parallel buckets.
            let hook =
                micro == microBatches - 1
                ? dataParallel.gradientHook(parameters: parameters, accumulated: accumulator.gradients) : nil
            let (_, grads) = try valueAndGradient(at: parameters, onGradientReady: hook) {
                let l = try model.loss(batch, zLossCoefficient: z)
                sums = (Double(try l.lossSum.item()), Double(try l.zLossSum.item()))
                count = l.count
                let total = try l.lossSum + l.zLossSum
                forwardEnd = DispatchTime.now().uptimeNanoseconds
                return total
            }
            out.lossSum += sums.0
            out.zLossSum += sums.1
            out.supervisedTokens += count
            try accumulator.add(grads, tokens: count)
            let end = DispatchTime.now().uptimeNanoseconds
            lastPhases.forward += Double(forwardEnd - start) * 1e-9
            lastPhases.backward += Double(end - forwardEnd) * 1e-9
        }
        let finalizeStart = DispatchTime.now().uptimeNanoseconds
        // Data parallel: gradient sums, loss sums and counts summed over the ranks before the division.
        out.gradients = try accumulator.finalize { sums, tokens in
            var scalars = [out.lossSum, out.zLossSum, Double(tokens), Double(out.tokens), Double(out.images)]
            try dataParallel.combine(&sums, scalars: &scalars, parameters: parameters)
            (out.lossSum, out.zLossSum) = (scalars[0], scalars[1])
            tokens = Int(scalars[2])
            (out.supervisedTokens, out.tokens, out.images) = (tokens, Int(scalars[3]), Int(scalars[4]))
        }
        lastPhases.backward += Double(DispatchTime.now().uptimeNanoseconds - finalizeStart) * 1e-9
        return out
    }

    /// One optimizer step over `accumulationSteps` micro-batches of `stream`: Optim's one step gate
    /// takes the global norm, skips a non-finite step and fuses the clipping into the update; the
    /// schedule position is the optimizer's own (applied steps). `run()` calls it in a loop; the
    /// benchmarks call it directly (its phases are in `lastPhases`).
    /// - Throws: data and model errors; `TrainingError` after too many non-finite steps in a row.
    public func step(_ stream: any BatchStream) throws -> StepRecord {
        let start = DispatchTime.now().uptimeNanoseconds
        let parameters = model.trainableParameters()
        let batch = try accumulateGradients(
            microBatches: optimization.accumulationSteps / dataParallel.worldSize, parameters: parameters
        ) { try stream.next() }
        let (tokens, images, supervised) = (batch.tokens, batch.images, batch.supervisedTokens)
        if !memoryLogged {
            memoryLogged = true
            let rows = optimization.microBatch * optimization.accumulationSteps
            let estimate = model.memoryEstimate(
                microBatch: optimization.microBatch, sequenceLength: tokens / max(1, rows),
                imagesPerMicroBatch: images / max(1, optimization.accumulationSteps),
                supervisedFraction: Double(supervised) / Double(max(1, tokens)))
            logger.info("\(stage): \(estimate)")
        }
        let (loss, zLoss) = (batch.loss, batch.zLoss)
        // A non-finite loss with finite gradients (an overflow in the loss alone) is skipped as well.
        let lossFinite = loss.isFinite && zLoss.isFinite
        let optimizerStart = DispatchTime.now().uptimeNanoseconds
        let outcome = try dataParallel.update(
            optimizer, parameters: parameters, gradients: batch.gradients, lossFinite: lossFinite,
            maxGradientNorm: Float(optimization.clipNorm))
        lastPhases.optimizer = Double(DispatchTime.now().uptimeNanoseconds - optimizerStart) * 1e-9
        let norm = lossFinite ? outcome.gradientNorm : batch.gradients.globalNorm()
        var lr = 0.0
        switch outcome {
        case .applied(let report):
            lr = peakLearningRate * report.scheduleMultiplier
            consecutiveNonFinite = 0
        case .skippedNonFinite:
            consecutiveNonFinite += 1
            let (name, gnorm) = largestGradient(batch.gradients)
            logger.warning(
                "\(stage) step \(globalStep): non-finite loss \(loss) / gradient norm \(norm); update skipped (\(optimizer.skippedSteps) skipped so far, \(consecutiveNonFinite) in a row; largest gradient \(name) with norm \(gnorm))"
            )
            if consecutiveNonFinite >= optimization.maxNonFiniteInARow {
                throw TrainingError(
                    "\(stage) step \(globalStep): \(consecutiveNonFinite) non-finite steps in a row (max_non_finite_in_a_row \(optimization.maxNonFiniteInARow)); the parameter with the largest gradient is \(name) (gradient norm \(gnorm)); loss \(loss)"
                )
            }
        }
        let finite = !outcome.isSkipped
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let record = StepRecord(
            step: globalStep, loss: loss, zLoss: zLoss, gradNorm: Double(norm), learningRate: lr,
            skipped: !finite)
        let scalars: [String: Double] = [
            Metric.loss: loss, Metric.zLoss: zLoss, Metric.learningRate: lr, Metric.gradNorm: Double(norm),
            Metric.tokensPerSecond: Double(tokens) / seconds, Metric.imagesPerSecond: Double(images) / seconds,
            Metric.supervisedTokens: Double(supervised), Metric.skippedSteps: Double(optimizer.skippedSteps),
            Metric.stepSeconds: seconds,
        ]
        for sink in writerSinks { try sink.record(stage: stage, step: globalStep, scalars: scalars) }
        return record
    }

    /// The sinks this process records to: all of them on rank 0, none on the other ranks.
    var writerSinks: [any MetricsSink] { dataParallel.isWriter ? sinks : [] }

    /// The parameter whose gradient has the largest L2 norm (a non-finite norm counts as largest).
    func largestGradient(_ gradients: Gradients) -> (String, Double) {
        var best = ("(none)", -1.0)
        for (name, g) in gradients {
            let n = g.withUnsafeBufferPointer { p -> Double in
                var s = 0.0
                for v in p { s += Double(v) * Double(v) }
                return s.squareRoot()
            }
            let key = n.isFinite ? n : .infinity
            let bestKey = best.1.isFinite ? best.1 : .infinity
            if key > bestKey || best.1 < 0 { best = (name, n) }
        }
        return best
    }

    /// Mean loss over the held-out batches and its perplexity (no gradients, evaluation mode).
    public func evaluate(_ feed: DataFeed) throws -> (loss: Double, perplexity: Double) {
        model.eval()
        defer { model.train() }
        let stream = try feed.open(nil)
        var sum = 0.0
        var count = 0
        try noGrad {
            for _ in 0..<max(1, evaluation.batches) {
                let l = try model.loss(try stream.next())
                sum += Double(try l.lossSum.item())
                count += l.count
            }
        }
        let loss = count > 0 ? sum / Double(count) : 0
        return (loss, exp(loss))
    }
}
