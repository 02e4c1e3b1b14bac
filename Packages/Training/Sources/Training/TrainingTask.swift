import Datasets
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
    /// The gradients of one global batch of `microBatches` micro-batches drawn from `next`, as the mean
    /// over the global batch's counted items (supervised tokens, image-caption pairs), never a mean of
    /// micro-batch means.
    /// - Parameter zLoss: the z-loss coefficient (tasks without logits over a vocabulary ignore it).
    func accumulateGradients(microBatches: Int, zLoss: Float, next: () throws -> Batch) throws -> BatchGradients
    /// The loss SUM of one held-out micro-batch and the items it counts (no gradients recorded).
    func evaluationLoss(_ batch: Batch) throws -> (sum: Double, count: Int)
    /// Called after each applied update (the contrastive task clamps its temperature here).
    func didApplyUpdate() throws
    /// Extra scalars recorded with each step (`logit_scale`, ...).
    func stepScalars() throws -> [String: Double]
    /// The memory estimate logged once before the first update, from the first global batch's sizes.
    func memoryEstimate(optimization: OptimizationConfig, firstBatch: BatchGradients) -> String?
}

extension TrainingTask {
    public func didApplyUpdate() throws {}
    public func stepScalars() throws -> [String: Double] { [:] }
    public func memoryEstimate(optimization: OptimizationConfig, firstBatch: BatchGradients) -> String? { nil }
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

    public init(open: @escaping (_ cursorJSON: String?) throws -> Stream) { self.open = open }
}

extension DataFeed {
    /// This feed as the loop's `BatchFeed` of packed batches.
    public var batchFeed: BatchFeed<PackedBatch> {
        BatchFeed { cursor in
            let s = try self.open(cursor)
            return .init(next: { try s.next() }, cursorJSON: { try s.cursorJSON() })
        }
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

    public func accumulateGradients(microBatches: Int, zLoss z: Float, next: () throws -> PackedBatch) throws
        -> BatchGradients
    {
        let parameters = model.trainableParameters()
        var accumulator = GradientAccumulator()
        var out = BatchGradients()
        for _ in 0..<microBatches {
            let batch = try next()
            out.tokens += batch.shape.batch * batch.shape.length
            out.images += batch.images?.shape[0] ?? 0
            var count = 0
            var sums = (0.0, 0.0)
            let (_, grads) = try valueAndGradient(at: parameters) {
                let l = try model.loss(batch, zLossCoefficient: z)
                sums = (Double(try l.lossSum.item()), Double(try l.zLossSum.item()))
                count = l.count
                return try l.lossSum + l.zLossSum
            }
            out.lossSum += sums.0
            out.zLossSum += sums.1
            out.supervisedTokens += count
            try accumulator.add(grads, tokens: count)
        }
        out.gradients = accumulator.finalize()
        return out
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
