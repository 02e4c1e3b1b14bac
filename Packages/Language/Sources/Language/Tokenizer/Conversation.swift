import Foundation

/// One message of a conversation.
public struct ConversationTurn: Sendable, Equatable {
    public enum Role: String, Sendable { case user, assistant }
    public var role: Role
    public var text: String

    public init(_ role: Role, _ text: String) {
        self.role = role
        self.text = text
    }
}

/// The prompt templates our fine-tuning uses.
public enum ConversationTemplate: Sendable, Equatable {
    /// LLaVA's Vicuna v1: `"{system} USER: {q} ASSISTANT: {a}</s>USER: ..."`; the answers and their
    /// `</s>` are supervised.
    case vicunaV1(system: String = ConversationTemplate.vicunaSystem)
    /// A plain caption prompt: `"{user}{assistant}\n"` (user is typically `<image>`); the caption and
    /// the newline are supervised.
    case plain

    public static let vicunaSystem =
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
}

/// Token ids of a formatted conversation with its loss labels.
public struct FormattedConversation: Sendable, Equatable {
    /// `[T]` token ids.
    public var ids: [Int]
    /// `[T]` the id where the loss supervises it (assistant answers), `ignoreIndex` elsewhere.
    public var labels: [Int]
    /// Token ranges of the assistant answers.
    public var assistantSpans: [Range<Int>]
    /// The text the pieces spell, for display.
    public var text: String
}

extension Tokenizer {
    /// Formats a conversation with a template. Each template piece (system + question, answer) is
    /// encoded on its own and the ids are concatenated, so the assistant spans come from the template
    /// itself, never from re-tokenising the whole text and searching for them.
    /// - Parameters:
    ///   - turns: alternating user/assistant turns, starting with the user.
    ///   - addBOS: start with the post-processor's special prefix (BOS) when it has one.
    ///   - endOfTurn: the token closing each answer (Vicuna: `</s>`).
    /// - Throws: `TokenizerError` when turns do not alternate user/assistant.
    public func format(
        _ turns: [ConversationTurn], template: ConversationTemplate, addBOS: Bool = true,
        endOfTurn: String = "</s>",
        ignoreIndex: Int = -100
    ) throws -> FormattedConversation {
        for (i, t) in turns.enumerated() where t.role != (i % 2 == 0 ? .user : .assistant) {
            throw TokenizerError(
                "turn \(i) is \(t.role.rawValue); turns must alternate user, assistant, starting with user")
        }
        var out = FormattedConversation(ids: [], labels: [], assistantSpans: [], text: "")
        func add(_ piece: String, supervised: Bool) {
            let ids = encode(piece)
            if supervised { out.assistantSpans.append(out.ids.count..<(out.ids.count + ids.count)) }
            out.ids += ids
            out.labels += supervised ? ids : Array(repeating: ignoreIndex, count: ids.count)
            out.text += piece
        }
        if addBOS {
            let bos = encode("", addSpecialTokens: true)
            out.ids += bos
            out.labels += Array(repeating: ignoreIndex, count: bos.count)
            out.text += bos.compactMap { token(of: $0) }.joined()
        }
        // A piece that follows a space in the full text starts with that space, unless the
        // tokenizer already prepends one to every piece (sentencepiece style).
        let space = prependsSpace ? "" : " "
        switch template {
        case .vicunaV1(let system):
            var prompt = system + " "
            for (i, t) in turns.enumerated() {
                if t.role == .user {
                    prompt += "USER: " + t.text + " ASSISTANT:"
                    add(prompt, supervised: false)
                    prompt = ""
                } else {
                    add(space + t.text + endOfTurn, supervised: true)
                }
            }
            if !prompt.isEmpty { add(prompt, supervised: false) }
        case .plain:
            for t in turns { add(t.role == .user ? t.text : t.text + "\n", supervised: t.role == .assistant) }
        }
        return out
    }
}
