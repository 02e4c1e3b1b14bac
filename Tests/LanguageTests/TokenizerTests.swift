import Foundation
import Language
import SightlineTestSupport
import Tensor
import Testing

// Token ids equal HF `tokenizers` on the committed multilingual texts (emoji, whitespace runs,
// numbers, CJK, special tokens) for tokenizers trained by scripts/make_language_fixtures.py:
// Llama-3-style byte-level (split regex), GPT-2-style byte-level, and Llama-2-style byte fallback.

struct TokenizerCases: Decodable {
    struct Entry: Decodable {
        var ids: [[Int]]
        var ids_special: [[Int]]
        var decoded: [String]
        var tokens: [[String]]
    }
    var texts: [String]
    var tokenizers: [String: Entry]

    static func load() throws -> TokenizerCases {
        try JSONDecoder().decode(
            TokenizerCases.self,
            from: Data(contentsOf: languageFixtures.appendingPathComponent("tokenizer_cases.json")))
    }
}

func fixtureTokenizer(_ name: String) throws -> Tokenizer {
    try Tokenizer(contentsOf: languageFixtures.appendingPathComponent("tokenizer_\(name).json"))
}

@Suite struct TokenizerTests {
    @Test(arguments: ["bytelevel", "gpt2", "bytefallback"])
    func idsMatchHuggingFaceTokenizers(name: String) throws {
        let cases = try TokenizerCases.load()
        let entry = try #require(cases.tokenizers[name])
        let tok = try fixtureTokenizer(name)
        for (i, text) in cases.texts.enumerated() {
            let ids = tok.encode(text)
            #expect(
                ids == entry.ids[i],
                "\(name) text \(i) \(text.debugDescription): ours \(tok.tokenize(text)) vs HF \(entry.tokens[i])"
            )
            #expect(
                tok.encode(text, addSpecialTokens: true) == entry.ids_special[i],
                "\(name) text \(i) with special tokens")
            #expect(
                tok.decode(entry.ids[i]) == entry.decoded[i],
                "\(name) decode \(i): \(tok.decode(entry.ids[i]).debugDescription) vs \(entry.decoded[i].debugDescription)"
            )
        }
    }

    @Test(arguments: ["bytelevel", "gpt2", "bytefallback"])
    func decodeInvertsEncode(name: String) throws {
        let tok = try fixtureTokenizer(name)
        for text in try TokenizerCases.load().texts {
            // Sentencepiece-style normalizers prepend "▁" to every piece between special tokens, so a
            // text with special tokens in it does not come back unchanged there (HF neither).
            if tok.prependsSpace && text.contains("</s>") { continue }
            #expect(tok.decode(tok.encode(text)) == text, "\(name): round trip of \(text.debugDescription)")
        }
    }

    @Test func byteFallbackCoversUnseenCharacters() throws {
        let tok = try fixtureTokenizer("bytefallback")
        let ids = tok.encode("🦜")
        #expect(ids.allSatisfy { tok.token(of: $0)!.hasPrefix("<0x") || tok.token(of: $0) == "\u{2581}" })
        #expect(tok.decode(ids) == "🦜")
        let byteLevel = try fixtureTokenizer("bytelevel")
        #expect(tok.prependsSpace && !byteLevel.prependsSpace)
    }

    @Test func addedSpecialTokensAreMatchedWhole() throws {
        let tok = try fixtureTokenizer("bytelevel")
        let before = tok.vocabularySize
        let ids = tok.addSpecialTokens(["<image>", "<pad>"])
        #expect(ids == [before, before + 1] && tok.vocabularySize == before + 2)
        let enc = tok.encode("look <image> here")
        #expect(enc.contains(ids[0]))
        #expect(tok.decode(enc, skipSpecialTokens: true) == "look  here")
        #expect(tok.decode(enc) == "look <image> here")
        #expect(tok.addToken("<image>", special: true) == ids[0])
    }

    /// HF `WordLevel`: one id per pre-tokenized word, `<unk>` for the rest (whole words, never pieces);
    /// no decoder joins tokens with spaces, as HF `tokenizers` does.
    @Test func wordLevelModelsEncodeWholeWords() throws {
        let json = #"""
            {"added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<image>", "special": true},
                              {"id": 2, "content": "<s>", "special": true}],
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "[ \\n]+"}, "behavior": "Removed", "invert": false},
                {"type": "Split", "pattern": {"Regex": "[.,?]"}, "behavior": "Isolated", "invert": false}]},
             "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [2], "tokens": ["<s>"]}}},
             "model": {"type": "WordLevel", "unk_token": "<unk>",
                       "vocab": {"<unk>": 0, "<image>": 1, "<s>": 2, "a": 3, "red": 4, "circle": 5, "?": 6, ".": 7}}}
            """#
        let tok = try Tokenizer(json: Data(json.utf8))
        #expect(tok.model.wordLevel && tok.vocabularySize == 8)
        // "redcircle" is not split into known pieces: it is one unknown word.
        #expect(tok.encode("a red<image>circle?\nredcircle .") == [3, 4, 1, 5, 6, 0, 7])
        #expect(tok.encode("a circle", addSpecialTokens: true) == [2, 3, 5])
        #expect(tok.decode([2, 3, 4, 1, 5, 6]) == "<s> a red <image> circle ?")
        #expect(tok.decode([2, 3, 4, 1, 5, 6], skipSpecialTokens: true) == "a red circle ?")
    }

    @Test func rejectsUnsupportedModels() throws {
        let wordPiece = #"{"model": {"type": "WordPiece", "vocab": {}}}"#
        #expect(throws: TokenizerError.self) { try Tokenizer(json: Data(wordPiece.utf8)) }
        let badMerge = #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#
        #expect(throws: TokenizerError.self) { try Tokenizer(json: Data(badMerge.utf8)) }
    }
}

@Suite struct SplitScannerTests {
    @Test(arguments: BuiltinSplitPattern.allCases)
    func scannerGivesTheRegexPieces(pattern: BuiltinSplitPattern) throws {
        var texts = try TokenizerCases.load().texts
        // Random strings over a pool that stresses the alternatives' edges.
        let pool: [String] = [
            "a", "Z", "é", "ß", "中", "文", "😀", "👍🏽", "1", "22", "٣", "½", " ", "  ", "\t", "\n", "\r\n",
            "\u{3000}",
            "'", "'s", "'S", "'ll", "'Re", "'x", ".", ",", "!?", "-", "_", "(", "\u{200D}", "ü",
        ]
        var g = RandomGenerator(seed: 11)
        for _ in 0..<300 {
            let draws = Tensor.uniform([24], generator: &g).scalars
            texts.append(
                draws.prefix(Int(draws[0] * 24) + 1).map {
                    pool[min(Int($0 * Float(pool.count)), pool.count - 1)]
                }.joined())
        }
        for text in texts {
            let fast = pattern.split(text), slow = pattern.regexSplit(text)
            #expect(fast == slow, "\(pattern) on \(text.debugDescription): scanner \(fast) vs regex \(slow)")
            #expect(fast.joined() == text)
        }
    }
}
