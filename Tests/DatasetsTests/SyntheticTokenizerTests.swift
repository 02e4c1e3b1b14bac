import Datasets
import Foundation
import Language
import SightlineTestSupport
import Testing

func syntheticTokenizerURL() -> URL {
    fixtureDirectory("datasets").appendingPathComponent("synthetic/tokenizer.json")
}

@Test func syntheticTokenizerReadsAndRoundTripsWorldText() throws {
    let tok = try Tokenizer(contentsOf: syntheticTokenizerURL())
    #expect(tok.id(of: "<pad>") == 0 && tok.id(of: "<image>") == 1 && tok.id(of: "<s>") == 2 && tok.id(of: "</s>") == 3)
    #expect(tok.vocabularySize <= 512)
    // Text the tokenizer was not trained on (another seed, the held-out split) round-trips exactly.
    let w = try SyntheticWorld(seed: 77)
    var words = 0, tokens = 0
    for line in w.corpus(count: 25, split: .heldOut) {
        let ids = tok.encode(line)
        #expect(tok.decode(ids) == line)
        #expect(!ids.contains { $0 <= 3 }, "no special tokens in world text")
        words += line.split(separator: " ").count
        tokens += ids.count
    }
    // The merges learnt the grammar: about one token per word.
    #expect(Double(tokens) / Double(words) < 1.3, "\(tokens) tokens for \(words) words")
}

@Test func syntheticTokenizerMatchesHFEncodings() throws {
    let tok = try Tokenizer(contentsOf: syntheticTokenizerURL())
    let data = try Data(
        contentsOf: fixtureDirectory("datasets").appendingPathComponent("synthetic/encodings.json"))
    let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    #expect(cases.count >= 20)
    for c in cases {
        let text = try #require(c["text"] as? String)
        let ids = try #require(c["ids"] as? [Int])
        #expect(tok.encode(text) == ids, "\(text)")
    }
}
