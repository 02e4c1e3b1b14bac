/// The stages of a Chain-of-Sight run: pre-train with few visual tokens, scale the token count,
/// then fine-tune (with LoRA on the decoder).
public enum Stage: String, Codable, CaseIterable, Sendable {
    case pretrain
    case scaleTokens = "scale-tokens"
    case finetune

    /// The stage after this one, or nil after fine-tuning.
    public var next: Stage? {
        switch self {
        case .pretrain: return .scaleTokens
        case .scaleTokens: return .finetune
        case .finetune: return nil
        }
    }
}
