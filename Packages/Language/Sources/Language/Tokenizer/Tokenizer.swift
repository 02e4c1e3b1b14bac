import Foundation

/// A tokenizer read from a HF `tokenizer.json` with a BPE model: byte-level BPE (GPT-2, Llama 3,
/// Qwen: a split regex plus the byte alphabet) and sentencepiece-style BPE with byte fallback
/// (Llama 2, Vicuna: `▁` for spaces, `<0xXX>` tokens for characters outside the vocabulary); or a
/// `WordLevel` model (one id per pre-tokenized word, e.g. the synthetic world's vocabulary as
/// `weights export --layout hf-llava` writes it).
///
/// Encoding follows HF `tokenizers`: added tokens are matched first (leftmost-longest, honouring
/// `lstrip`/`rstrip`/`single_word`), the rest is normalized, pre-tokenized and merged word by word;
/// the post-processor adds the template's special tokens (for example BOS) when asked.
///
/// ```swift
/// let tok = try Tokenizer(contentsOf: URL(fileURLWithPath: "tokenizer.json"))
/// let ids = tok.encode("Hello world", addSpecialTokens: true)
/// tok.decode(ids, skipSpecialTokens: true)      // "Hello world"
/// ```
public final class Tokenizer: @unchecked Sendable {
    /// A token matched before normalization (special tokens, `<image>`).
    public struct AddedToken: Sendable, Equatable {
        public var content: String
        public var id: Int
        public var special: Bool
        public var lstrip = false
        public var rstrip = false
        public var singleWord = false
        public var normalized = false
    }

    public let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let decoder: TokenDecoder?
    let postProcessor: PostProcessor
    public private(set) var addedTokens: [AddedToken] = []
    private var addedById: [Int: AddedToken] = [:]
    private var addedByContent: [String: Int] = [:]
    private var rawMatcher = AddedMatcher(tokens: [])
    /// Word -> ids memo (HF's BPE keeps one too); emptied when it reaches `wordCacheCapacity`.
    private var wordCache: [String: [Int]] = [:]
    private let cacheLock = NSLock()
    /// Entries the word cache may hold (0 disables it).
    public var wordCacheCapacity = 20_000
    private var normalizedMatcher = AddedMatcher(tokens: [])

    /// Reads `tokenizer.json`.
    /// - Throws: `TokenizerError` for a model other than BPE or WordLevel, or an unsupported pipeline stage.
    public convenience init(contentsOf url: URL) throws {
        try self.init(json: Data(contentsOf: url))
    }

    /// Parses the contents of a `tokenizer.json`.
    public init(json data: Data) throws {
        guard let root = try JSONSerialization.jsonObject(with: data) as? JSONObject else {
            throw TokenizerError("tokenizer.json is not a JSON object")
        }
        guard let m = root["model"] as? JSONObject, ["BPE", "WordLevel"].contains(jsonString(m["type"]) ?? "BPE")
        else {
            throw TokenizerError(
                "only BPE and WordLevel models are supported (model.type = \(((root["model"] as? JSONObject)?["type"]) ?? "nil"))"
            )
        }
        let wordLevel = jsonString(m["type"]) == "WordLevel"
        if let p = jsonString(m["continuing_subword_prefix"]), !p.isEmpty {
            throw TokenizerError("continuing_subword_prefix is not supported")
        }
        if let p = jsonString(m["end_of_word_suffix"]), !p.isEmpty {
            throw TokenizerError("end_of_word_suffix is not supported")
        }
        var vocab: [String: Int] = [:]
        for (k, v) in (m["vocab"] as? JSONObject) ?? [:] { if let i = jsonInt(v) { vocab[k] = i } }
        var merges: [(String, String)] = []
        for item in (m["merges"] as? [Any]) ?? [] {
            if let s = item as? String {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError("bad merge \"\(s)\"") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = item as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw TokenizerError("bad merge \(item)")
            }
        }
        model = try BPEModel(
            vocabulary: vocab, merges: merges, unknownToken: jsonString(m["unk_token"]),
            byteFallback: jsonBool(m["byte_fallback"], false), fuseUnknown: jsonBool(m["fuse_unk"], false),
            ignoreMerges: jsonBool(m["ignore_merges"], false), wordLevel: wordLevel)
        normalizer = try (root["normalizer"] as? JSONObject).map(Normalizer.init)
        preTokenizer = try (root["pre_tokenizer"] as? JSONObject).map(PreTokenizer.init)
        decoder = try (root["decoder"] as? JSONObject).map(TokenDecoder.init)
        postProcessor = try PostProcessor(root["post_processor"] as? JSONObject)
        for t in (root["added_tokens"] as? [JSONObject]) ?? [] {
            guard let content = jsonString(t["content"]), let id = jsonInt(t["id"]) else { continue }
            register(
                AddedToken(
                    content: content, id: id, special: jsonBool(t["special"], false),
                    lstrip: jsonBool(t["lstrip"], false),
                    rstrip: jsonBool(t["rstrip"], false), singleWord: jsonBool(t["single_word"], false),
                    normalized: jsonBool(t["normalized"], false)))
        }
        rebuildMatchers()
    }

    private func register(_ t: AddedToken) {
        addedTokens.append(t)
        addedById[t.id] = t
        addedByContent[t.content] = t.id
    }

    private func rebuildMatchers() {
        rawMatcher = AddedMatcher(tokens: addedTokens.filter { !$0.normalized })
        normalizedMatcher = AddedMatcher(tokens: addedTokens.filter { $0.normalized })
    }

    /// Number of ids (model vocabulary and added tokens): the embedding rows a model needs.
    public var vocabularySize: Int { max(model.tokens.count, (addedById.keys.max() ?? -1) + 1) }

    /// Whether the normalizer or pre-tokenizer puts a space marker before each text piece
    /// (sentencepiece style): then a piece encoded on its own already starts like a word after a space.
    public var prependsSpace: Bool {
        if normalizer?.prependsSpace == true { return true }
        if case .metaspace(_, let scheme, _)? = preTokenizer { return scheme != "never" }
        return false
    }

    /// The id of a token string (added tokens included).
    public func id(of token: String) -> Int? { addedByContent[token] ?? model.vocabulary[token] }

    /// The token string of an id.
    public func token(of id: Int) -> String? {
        if let a = addedById[id] { return a.content }
        return id >= 0 && id < model.tokens.count && !model.tokens[id].isEmpty ? model.tokens[id] : nil
    }

    /// Whether `id` is an added token marked special.
    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    /// Adds a token matched before normalization (HF `add_tokens`/`add_special_tokens`) and returns its
    /// id; a known token keeps its id.
    @discardableResult
    public func addToken(_ content: String, special: Bool) -> Int {
        if let id = addedByContent[content] { return id }
        if let id = model.vocabulary[content] {
            register(AddedToken(content: content, id: id, special: special))
        } else {
            register(AddedToken(content: content, id: vocabularySize, special: special))
        }
        rebuildMatchers()
        return addedByContent[content]!
    }

    /// Adds special tokens (for example `<image>` and a padding token) and returns their ids. Resize
    /// the model with `resizeVocabulary(to: tokenizer.vocabularySize)` afterwards.
    @discardableResult
    public func addSpecialTokens(_ tokens: [String]) -> [Int] { tokens.map { addToken($0, special: true) } }

    // MARK: Encoding

    /// Token ids of `text`.
    /// - Parameter addSpecialTokens: apply the post-processor's template (for example a leading BOS).
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        var ids: [Int] = []
        var first = true
        for piece in rawMatcher.split(Substring(text)) {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let s):
                let normalized = normalizer?.apply(String(s)) ?? String(s)
                for inner in normalizedMatcher.split(Substring(normalized)) {
                    switch inner {
                    case .token(let id): ids.append(id)
                    case .text(let t):
                        let words = preTokenizer?.apply([String(t)], first: first) ?? [String(t)]
                        for w in words { encodeWord(w, into: &ids) }
                    }
                }
            }
            first = false
        }
        return addSpecialTokens ? postProcessor.apply(ids) : ids
    }

    private func encodeWord(_ w: String, into ids: inout [Int]) {
        guard wordCacheCapacity > 0 else { model.encode(word: Substring(w), into: &ids); return }
        cacheLock.lock()
        let hit = wordCache[w]
        cacheLock.unlock()
        if let hit { ids.append(contentsOf: hit); return }
        var fresh: [Int] = []
        model.encode(word: Substring(w), into: &fresh)
        ids.append(contentsOf: fresh)
        cacheLock.lock()
        if wordCache.count >= wordCacheCapacity { wordCache.removeAll(keepingCapacity: true) }
        wordCache[w] = fresh
        cacheLock.unlock()
    }

    /// Token strings of `text` (no special tokens added).
    public func tokenize(_ text: String) -> [String] { encode(text).map { token(of: $0) ?? "" } }

    /// Text of `ids` through the decoder (byte-level, byte fallback, `▁` to space).
    /// - Parameter skipSpecialTokens: drop added tokens marked special.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let tokens = ids.compactMap { id -> String? in
            if skipSpecialTokens && isSpecial(id) { return nil }
            return token(of: id)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.apply(tokens).joined()
    }
}

/// Leftmost-longest matching of added tokens, with their `lstrip`/`rstrip`/`single_word` rules, over
/// Unicode scalars (as HF matches bytes; never grapheme clusters).
struct AddedMatcher {
    enum Piece { case text(Substring), token(Int) }
    let byFirst: [Unicode.Scalar: [Tokenizer.AddedToken]]
    /// Whether an ASCII scalar starts some token (skips the dictionary for most characters).
    let asciiStarts: [Bool]
    let hasNonASCIIStart: Bool

    init(tokens: [Tokenizer.AddedToken]) {
        var d: [Unicode.Scalar: [Tokenizer.AddedToken]] = [:]
        for t in tokens where !t.content.isEmpty { d[t.content.unicodeScalars.first!, default: []].append(t) }
        byFirst = d.mapValues {
            $0.sorted { $0.content.unicodeScalars.count > $1.content.unicodeScalars.count }
        }
        var a = [Bool](repeating: false, count: 128)
        for k in d.keys where k.value < 128 { a[Int(k.value)] = true }
        asciiStarts = a
        hasNonASCIIStart = d.keys.contains { $0.value >= 128 }
    }

    func split(_ s: Substring) -> [Piece] {
        guard !byFirst.isEmpty else { return [.text(s)] }
        let u = s.unicodeScalars
        var out: [Piece] = []
        var textStart = u.startIndex
        var i = u.startIndex
        while i < u.endIndex {
            var matched: (Tokenizer.AddedToken, Range<String.Index>)? = nil
            let c = u[i]
            let maybe = c.value < 128 ? asciiStarts[Int(c.value)] : hasNonASCIIStart
            if maybe, let cands = byFirst[c] {
                for t in cands where u[i...].starts(with: t.content.unicodeScalars) {
                    let end = u.index(i, offsetBy: t.content.unicodeScalars.count)
                    if t.singleWord {
                        let before = i > u.startIndex ? u[u.index(before: i)] : nil
                        let after = end < u.endIndex ? u[end] : nil
                        if before.map(isWordChar) == true || after.map(isWordChar) == true { continue }
                    }
                    matched = (t, i..<end)
                    break
                }
            }
            guard let (t, r) = matched else { i = u.index(after: i); continue }
            var lo = r.lowerBound, hi = r.upperBound
            if t.lstrip {
                while lo > textStart, u[u.index(before: lo)].properties.isWhitespace {
                    lo = u.index(before: lo)
                }
            }
            if t.rstrip { while hi < u.endIndex, u[hi].properties.isWhitespace { hi = u.index(after: hi) } }
            if textStart < lo { out.append(.text(s[textStart..<lo])) }
            out.append(.token(t.id))
            textStart = hi
            i = hi
        }
        if textStart < u.endIndex { out.append(.text(s[textStart...])) }
        return out
    }

    private func isWordChar(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
    }
}
