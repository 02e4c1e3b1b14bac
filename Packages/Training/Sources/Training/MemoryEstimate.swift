import Foundation
import Language
import Layers
import Vision

/// What a run will hold in memory, in bytes (float32 everywhere), printed before a run starts.
///
/// Parameters, gradients (trainable parameters only) and AdamW's two moments are exact counts.
/// Activations are an estimate of the tensors backward keeps for one micro-batch: per decoder layer
/// and token the norm inputs, q/k/v/attention output, the SwiGLU's gate/up/product, plus the
/// attention probabilities per head and key; per trainable vision layer the same for the tower's
/// LayerNorm/attention/MLP; the logits and softmax of the supervised tokens. With activation
/// checkpointing a part keeps one input per layer plus one layer's activations. A frozen tower keeps
/// nothing but its output features.
public struct MemoryEstimate: CustomStringConvertible, Equatable, Sendable {
    public var parameterBytes: Int
    public var gradientBytes: Int
    public var optimizerStateBytes: Int
    public var activationBytesPerMicroBatch: Int
    /// The shapes the estimate assumed.
    public var microBatch: Int
    public var sequenceLength: Int
    public var imagesPerMicroBatch: Int

    /// Sum of the four.
    public var totalBytes: Int {
        parameterBytes + gradientBytes + optimizerStateBytes + activationBytesPerMicroBatch
    }

    public var description: String {
        func f(_ b: Int) -> String {
            let d = Double(b)
            if d >= 1_073_741_824 { return String(format: "%.2f GiB", d / 1_073_741_824) }
            if d >= 1_048_576 { return String(format: "%.1f MiB", d / 1_048_576) }
            return String(format: "%.1f KiB", d / 1024)
        }
        return "memory estimate: parameters \(f(parameterBytes)), gradients \(f(gradientBytes)), "
            + "optimizer state \(f(optimizerStateBytes)), activations \(f(activationBytesPerMicroBatch)) "
            + "per micro-batch (\(microBatch) x \(sequenceLength) tokens, \(imagesPerMicroBatch) sub-images); "
            + "total \(f(totalBytes))"
    }
}

extension MultimodalModel {
    /// Estimates the memory of training this model with AdamW.
    /// - Parameters:
    ///   - microBatch: rows per micro-batch.
    ///   - sequenceLength: tokens per row.
    ///   - imagesPerMicroBatch: sub-images (crops) the tower sees per micro-batch.
    ///   - supervisedFraction: share of tokens that carry loss (the logits are computed only there).
    public func memoryEstimate(
        microBatch: Int, sequenceLength: Int, imagesPerMicroBatch: Int, supervisedFraction: Double = 1
    ) -> MemoryEstimate {
        let f = MemoryLayout<Float>.size
        let params = parameterCount()
        let trainable = parameterCount(trainableOnly: true)
        // Decoder.
        let lc = languageModel.config
        let tokens = microBatch * sequenceLength
        let hd = lc.hiddenSize
        let attnWidth = lc.numAttentionHeads * lc.headDim
        let kvWidth = lc.numKeyValueHeads * lc.headDim
        let perLayerToken = 2 * hd + attnWidth + 2 * kvWidth + attnWidth + 3 * lc.intermediateSize
        let probs = microBatch * lc.numAttentionHeads * sequenceLength * sequenceLength
        let layerBytes = (tokens * perLayerToken + probs) * f
        let decoderTrains = languageModel.trainableParameters().count > 0
        var decoder = 0
        if decoderTrains || connector.trainableParameters().count > 0 || !visionTower.isFrozen {
            decoder =
                languageModel.gradientCheckpointing
                ? lc.numHiddenLayers * tokens * hd * f + layerBytes
                : lc.numHiddenLayers * layerBytes
        }
        let supervised = Int((Double(tokens) * supervisedFraction).rounded(.up))
        let logits = 2 * supervised * lc.vocabSize * f
        // Vision tower: layers up to the deepest level read, only the trainable ones keep activations.
        let vc = visionTower.config
        let deepest = (connector.featureLevels.compactMap { try? visionTower.resolveLayer($0) }.max()) ?? 0
        let seq = vc.gridSize * vc.gridSize + 1
        let vTokens = imagesPerMicroBatch * seq
        let vPerToken = 4 * vc.hiddenSize + vc.hiddenSize + 2 * vc.intermediateSize
        let vProbs = imagesPerMicroBatch * vc.numAttentionHeads * seq * seq
        let vLayer = (vTokens * vPerToken + vProbs) * f
        let trainableLayers = (0..<deepest).filter { i in
            visionTower.visionModel.encoder.layers[i].trainableParameters().count > 0
        }.count
        let vision =
            visionTower.gradientCheckpointing
            ? trainableLayers * vTokens * vc.hiddenSize * f + (trainableLayers > 0 ? vLayer : 0)
            : trainableLayers * vLayer
        let features = connector.featureLevels.count * vTokens * vc.hiddenSize * f
        return MemoryEstimate(
            parameterBytes: params * f, gradientBytes: trainable * f, optimizerStateBytes: 2 * trainable * f,
            activationBytesPerMicroBatch: decoder + logits + vision + features, microBatch: microBatch,
            sequenceLength: sequenceLength, imagesPerMicroBatch: imagesPerMicroBatch)
    }
}
