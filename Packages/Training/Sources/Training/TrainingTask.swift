import Checkpoint
import Datasets
import Dispatch
import Foundation
import Layers
import Optim
import Tensor

/// What the training loop (`TrainingLoop`) trains: a module, its batches, and how one global batch's
/// gradients and one held-out batch's loss are computed. The loop owns everything else: the optimizer
/// and schedule, clipping, the non-finite guard, evaluation cadence, checkpoints, exact resume, stop
/// requests and metrics. `MultimodalTask` trains the multimodal model on packed batches (the
/// `pretrain` and `finetune` stages); `ContrastiveTask` trains the two-tower CLIP model on image-caption
/// pairs (the `clip` stage).
public protocol TrainingTask: AnyObject {
    /// One micro-batch.
    associatedtype Batch

    /// The module trained: its state dict is a checkpoint's model group, its `Dropout` modules'
    /// generators are part of the run state.
    var module: Module { get }
    /// The N of `learning_rate: auto` (MM1's law; the decoder's parameter count for the multimodal
    /// model).
    var learningRateLawParameters: Int { get }
    /// The gradients of one global batch of `microBatches` micro-batches drawn from `next` (this
    /// process's share of it), as the mean over the global batch's counted items (supervised tokens,
    /// image-caption pairs) of every data-parallel rank, never a mean of micro-batch means.
    /// - Parameters:
    ///   - zLoss: the z-loss coefficient (tasks without logits over a vocabulary ignore it).
    ///   - dataParallel: combines gradients, loss sums and counts over the ranks (`DataParallel.single`:
    ///     no-op).
    ///   - phases: the forward and backward seconds are added here.
    func accumulateGradients(
        microBatches: Int, zLoss: Float, dataParallel: DataParallel, phases: inout StepPhases,
        next: () throws -> Batch
    ) throws -> BatchGradients
    /// The loss SUM of one held-out micro-batch and the items it counts (no gradients recorded).
    func evaluationLoss(_ batch: Batch) throws -> (sum: Double, count: Int)
    /// Called after each applied update (the contrastive task clamps its temperature here).
    func didApplyUpdate() throws
    /// Extra scalars recorded with each step (`logit_scale`, ...).
    func stepScalars() throws -> [String: Double]
    /// The memory estimate logged once before the first update, from the first global batch's sizes.
    func memoryEstimate(optimization: OptimizationConfig, firstBatch: BatchGradients) -> String?
    /// Documents written into every checkpoint's trainer group so that the model can be rebuilt from
    /// the file alone (the multimodal model's architecture and LoRA adapters).
    func checkpointDocuments(_ documents: inout JSONDocuments) throws
}

extension TrainingTask {
    /// `accumulateGradients` in a single process, phases discarded.
    public func accumulateGradients(microBatches: Int, zLoss: Float, next: () throws -> Batch) throws
        -> BatchGradients
    {
        var phases = StepPhases()
        return try accumulateGradients(
            microBatches: microBatches, zLoss: zLoss, dataParallel: .single, phases: &phases, next: next)
    }

    public func checkpointDocuments(_ documents: inout JSONDocuments) throws {}
    public func didApplyUpdate() throws {}
    public func stepScalars() throws -> [String: Double] { [:] }
    public func memoryEstimate(optimization: OptimizationConfig, firstBatch: BatchGradients) -> String? { nil }
}

/// Wall-clock seconds of the phases of one optimizer step (what the benchmarks split a step into;
/// kept out of the loop's `StepRecord`, which stays bit-comparable between runs).
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

/// Gradients of one global batch: the mean gradient over its counted items (supervised tokens of
/// the multimodal model, pairs of the contrastive model), with the loss sums behind it.
public struct BatchGradients {
    /// Mean gradient over the global batch's counted items (before clipping).
    public var gradients: Gradients
    /// Sum of cross-entropy and of the z-loss term over the counted items.
    public var lossSum: Double
    public var zLossSum: Double
    /// Counted items (supervised tokens, or pairs), all tokens, sub-images.
    public var supervisedTokens: Int
    public var tokens: Int
    public var images: Int
    /// Mean loss (0 without counted items).
    public var loss: Double { supervisedTokens > 0 ? lossSum / Double(supervisedTokens) : 0 }
    /// Mean z-loss term.
    public var zLoss: Double { supervisedTokens > 0 ? zLossSum / Double(supervisedTokens) : 0 }

    public init(
        gradients: Gradients = Gradients(), lossSum: Double = 0, zLossSum: Double = 0, supervisedTokens: Int = 0,
        tokens: Int = 0, images: Int = 0
    ) {
        self.gradients = gradients
        self.lossSum = lossSum
        self.zLossSum = zLossSum
        self.supervisedTokens = supervisedTokens
        self.tokens = tokens
        self.images = images
    }
}

/// Opens a stream of micro-batches at the start (`nil`) or at a saved cursor (JSON text).
public struct BatchFeed<Batch> {
    /// A stream: the next micro-batch, and the position after the last one as JSON text.
    public struct Stream {
        public var next: () throws -> Batch
        public var cursorJSON: () throws -> String
        public init(next: @escaping () throws -> Batch, cursorJSON: @escaping () throws -> String) {
            self.next = next
            self.cursorJSON = cursorJSON
        }
    }

    public var open: (_ cursorJSON: String?) throws -> Stream
    /// The cursor rank `rank` of `worldSize` data-parallel ranks continues from, given the cursors a
    /// checkpoint saved for a different number of ranks (see `DataFeed.reshard`).
    public var reshard: (_ cursors: [String], _ rank: Int, _ worldSize: Int) throws -> String?

    /// - Parameter reshard: default: an error (the feed cannot change its rank count).
    public init(
        open: @escaping (_ cursorJSON: String?) throws -> Stream,
        reshard: ((_ cursors: [String], _ rank: Int, _ worldSize: Int) throws -> String?)? = nil
    ) {
        self.open = open
        self.reshard =
            reshard ?? { cursors, _, worldSize in
                throw TrainingError(
                    "this data feed cannot continue a checkpoint of \(cursors.count) data-parallel rank(s) on \(worldSize)")
            }
    }
}

extension DataFeed {
    /// This feed as the loop's `BatchFeed` of packed batches.
    public var batchFeed: BatchFeed<PackedBatch> {
        BatchFeed(
            open: { cursor in
                let s = try self.open(cursor)
                return .init(next: { try s.next() }, cursorJSON: { try s.cursorJSON() })
            }, reshard: reshard)
    }
}

/// The multimodal model on packed batches: each micro-batch's loss SUM (cross-entropy + z-loss over
/// its supervised tokens) is differentiated; Optim's `GradientAccumulator` adds the gradients and
/// divides once by the global batch's supervised-token count.
public final class MultimodalTask: TrainingTask {
    public let model: MultimodalModel

    public init(model: MultimodalModel) { self.model = model }

    public var module: Module { model }
    public var learningRateLawParameters: Int { model.languageModelParameterCount }

    public func accumulateGradients(
        microBatches: Int, zLoss z: Float, dataParallel: DataParallel, phases: inout StepPhases,
        next: () throws -> PackedBatch
    ) throws -> BatchGradients {
        let parameters = model.trainableParameters()
        var accumulator = GradientAccumulator()
        var out = BatchGradients()
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
            phases.forward += Double(forwardEnd - start) * 1e-9
            phases.backward += Double(end - forwardEnd) * 1e-9
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
        phases.backward += Double(DispatchTime.now().uptimeNanoseconds - finalizeStart) * 1e-9
        return out
    }

    public func checkpointDocuments(_ documents: inout JSONDocuments) throws {
        try documents.set(model.config, for: ModelDocuments.modelConfig)
        if let lora = try model.attachedLoRAConfig() { try documents.set(lora, for: ModelDocuments.lora) }
    }

    public func evaluationLoss(_ batch: PackedBatch) throws -> (sum: Double, count: Int) {
        let l = try model.loss(batch)
        return (Double(try l.lossSum.item()), l.count)
    }

    public func memoryEstimate(optimization: OptimizationConfig, firstBatch b: BatchGradients) -> String? {
        let rows = optimization.microBatch * optimization.accumulationSteps
        return model.memoryEstimate(
            microBatch: optimization.microBatch, sequenceLength: b.tokens / max(1, rows),
            imagesPerMicroBatch: b.images / max(1, optimization.accumulationSteps),
            supervisedFraction: Double(b.supervisedTokens) / Double(max(1, b.tokens))
        ).description
    }
}
