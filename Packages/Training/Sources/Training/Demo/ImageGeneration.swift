import Datasets
import Foundation
import Language
import Tensor

/// `trainer generate`: answers a prompt about an image with a stage folder's model
/// (`USER: <image>\n{prompt}\nASSISTANT: `, the fine-tuning format).
public enum ImageGeneration {
    /// Generates from `checkpoint` (a stage folder with `vision/`, `connector/`, `language/`).
    /// - Parameters:
    ///   - image: a PNG/JPEG file (resized and normalised as the tower expects).
    ///   - onToken: called with each generated token's text as soon as it is sampled, in order (stop
    ///     tokens left out).
    /// - Returns: the generated token ids.
    public static func run(
        checkpoint: String, image: String, prompt: String, options: GenerationOptions,
        onToken: (String) -> Void = { _ in }
    ) throws -> [Int] {
        guard FileManager.default.fileExists(atPath: checkpoint + "/language") else {
            throw ConfigError(
                keyPath: "checkpoint", source: checkpoint,
                "not a stage folder (expected vision/, connector/ and language/ inside)")
        }
        let model = try StageModels.load(directory: checkpoint)
        model.eval()
        let pixels = try PipelineImages.clip(size: model.visionTower.config.imageSize)(
            PipelineImages.decode(.file(URL(fileURLWithPath: image)))
        ).pixels
        var o = options
        o.stopTokens.formUnion(AnswerEvaluation.stopTokens())
        let words = SyntheticVocabulary().words, stops = o.stopTokens
        return try noGrad {
            let image = try model.imageTokens(pixels).tokens
            let h = model.languageModel.config.hiddenSize
            let flat = try image.reshaped([image.shape.dropLast().reduce(1, *), h])
            let (a, b) = AnswerEvaluation.promptIDs(prompt, vocabulary: SyntheticVocabulary())
            let table = model.languageModel.model.embedTokens.weight.data
            let e = try Tensor.concatenate(
                [embedding(IndexTensor(a), weight: table), flat, embedding(IndexTensor(b), weight: table)], axis: 0)
            // Each token's text goes out as soon as it is sampled.
            return try model.languageModel.generate(promptEmbeddings: [e], options: o) { _, id in
                if id >= 0 && id < words.count && !stops.contains(id) { onToken(words[id]) }
            }[0]
        }
    }
}
