import Layers
import TensorFiles

extension CLIPVisionModel {
    /// The load rules of a CLIP vision tower, stated once (every load of a tower uses them):
    /// - keys with HF's `vision_model.` prefix (transformers 4, full CLIP checkpoints) and without it
    ///   (transformers 5 `CLIPVisionModel.save_pretrained`) both load;
    /// - the other parts of a full CLIP checkpoint (`text_model.`, `text_projection.`,
    ///   `visual_projection.`, `logit_scale`) are skipped, not unexpected;
    /// - the derived `embeddings.position_ids` buffer is ignored.
    /// - Parameter strict: throw on anything missing, unexpected or mis-shaped (default).
    public static func loadOptions(strict: Bool = true) -> LoadOptions {
        LoadOptions(
            strict: strict, ignored: LoadOptions.derivedBuffers, optionalPrefixes: ["vision_model."],
            skippedPrefixes: ["text_model.", "text_projection.", "visual_projection.", "logit_scale"])
    }

    /// Loads weights through `WeightLoader` under `loadOptions(strict:)`: every parameter must be
    /// present exactly once with its exact shape, and every other key must be skippable.
    /// - Returns: the report (loaded, renamed, ignored, skipped, conversions).
    /// - Throws: `LoadError` naming the source and listing every missing, unexpected, duplicated or
    ///   mis-shaped key (nothing is modified then); `TensorFileError` when a tensor cannot be read.
    @discardableResult
    public func load(from source: TensorSource, strict: Bool = true) throws -> LoadReport {
        try WeightLoader.load(source, into: self, options: Self.loadOptions(strict: strict))
    }
}
