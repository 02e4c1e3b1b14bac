/// The stages of a run, in order: contrastive pre-training of the vision tower, MLLM pre-training with
/// few visual tokens, compound token scaling, then fine-tuning (with LoRA on the decoder).
public enum Stage: String, Codable, CaseIterable, Sendable {
    case clip
    case pretrain
    case scaleTokens = "scale-tokens"
    case finetune

    /// The stage after this one, or nil after fine-tuning.
    public var next: Stage? {
        switch self {
        case .clip: return .pretrain
        case .pretrain: return .scaleTokens
        case .scaleTokens: return .finetune
        case .finetune: return nil
        }
    }
}
