import Foundation
import Language
import SightlineTestSupport
import Tensor
import Testing

@Suite struct GenerationTests {
    /// Greedy decoding by recomputing the whole forward pass at every step (no cache).
    func greedyWithoutCache(_ model: LlamaForCausalLM, prompt: [Int], steps: Int) throws -> [Int] {
        var seq = prompt
        var out: [Int] = []
        for _ in 0..<steps {
            let logits = try model(IndexTensor(shape: [1, seq.count], values: seq))
            let last = try logits.narrow(axis: 1, start: seq.count - 1, length: 1).reshaped([
                model.config.vocabSize
            ])
            let next = try last.argmax(axis: 0).values[0]
            out.append(next)
            seq.append(next)
        }
        return out
    }

    @Test func cachedGreedyEqualsFullRecompute() throws {
        let model = try loadFixtureModel("llama_tiny")
        let prompt = [5, 17, 33, 2, 71, 40]
        let cached = try model.generate(prompts: [prompt], options: .greedy(maxNewTokens: 12))[0]
        #expect(cached == (try greedyWithoutCache(model, prompt: prompt, steps: 12)))
        #expect(Set(cached).count > 1, "degenerate continuation \(cached)")
    }

    @Test func cachedLogitsEqualFullForward() throws {
        let model = try loadFixtureModel("llama_tiny")
        let seq = [9, 8, 7, 6, 5, 4, 3, 30, 60, 90]
        let full = try model(IndexTensor(shape: [1, 10], values: seq)).reshaped([10, 96])
        let cache = KVCache(layers: 2)
        var h = try model.hiddenStates(
            DecoderInput(tokens: IndexTensor(shape: [1, 4], values: Array(seq[0..<4]))), cache: cache)
        var rows = [try model.logits(hidden: h).reshaped([4, 96])]
        for i in 4..<10 {
            h = try model.hiddenStates(
                DecoderInput(tokens: IndexTensor(shape: [1, 1], values: [seq[i]])), cache: cache)
            rows.append(try model.logits(hidden: h).reshaped([1, 96]))
        }
        #expect(cache.length == 10)
        #expect(relErr(try Tensor.concatenate(rows, axis: 0), full) < 1e-5)
    }

    @Test func batchOfDifferentLengthsEqualsEachAlone() throws {
        let model = try loadFixtureModel("llama_tiny")
        let prompts = [[5, 17, 33], [40, 41, 42, 43, 44, 45, 46], [90]]
        let batch = try model.generate(prompts: prompts, options: .greedy(maxNewTokens: 6))
        for (i, p) in prompts.enumerated() {
            #expect(
                batch[i] == (try model.generate(prompts: [p], options: .greedy(maxNewTokens: 6))[0]),
                "row \(i)")
        }
    }

    @Test func samplingIsSeededAndRespectsStopsAndTopK() throws {
        let model = try loadFixtureModel("llama_tiny")
        let prompt = [[3, 1, 4, 1, 5]]
        let opts = GenerationOptions(maxNewTokens: 10, temperature: 1.5, topK: 20, topP: 0.9, seed: 7)
        let a = try model.generate(prompts: prompt, options: opts)
        #expect(a == (try model.generate(prompts: prompt, options: opts)))
        var other = opts
        other.seed = 8
        #expect(a != (try model.generate(prompts: prompt, options: other)))
        var k1 = opts
        k1.topK = 1
        #expect(
            try model.generate(prompts: prompt, options: k1)
                == model.generate(prompts: prompt, options: .greedy(maxNewTokens: 10)))
        let greedy = try model.generate(prompts: prompt, options: .greedy(maxNewTokens: 10))[0]
        let stopped = try model.generate(
            prompts: prompt, options: .greedy(maxNewTokens: 10, stopTokens: [greedy[2]]))[0]
        #expect(stopped == Array(greedy.prefix(through: greedy.firstIndex(of: greedy[2])!)))
    }

    /// The per-token callback sees each row's returned tokens, in order, step by step (all rows' k-th
    /// tokens before any row's (k+1)-th), for greedy and for seeded top-k/top-p sampling with stops.
    @Test func onTokenSeesTheReturnedTokensInOrder() throws {
        let model = try loadFixtureModel("llama_tiny")
        let prompts = [[5, 17, 33], [40, 41, 42, 43, 44, 45, 46], [90]]
        let greedy = try model.generate(prompts: prompts, options: .greedy(maxNewTokens: 6))
        let sampled = GenerationOptions(
            maxNewTokens: 9, temperature: 1.2, topK: 30, topP: 0.95, stopTokens: [greedy[1][2]], seed: 11)
        for options in [GenerationOptions.greedy(maxNewTokens: 6), sampled] {
            var events: [(row: Int, token: Int)] = []
            let out = try model.generate(prompts: prompts, options: options) { events.append(($0, $1)) }
            #expect(out == (try model.generate(prompts: prompts, options: options)), "the callback changed the output")
            #expect(events.count == out.map(\.count).reduce(0, +))
            for r in prompts.indices {
                #expect(events.filter { $0.row == r }.map(\.token) == out[r], "row \(r)")
            }
            // Step order: the step of each event (its index within its row) never decreases.
            var seen = [Int](repeating: 0, count: prompts.count)
            var steps: [Int] = []
            for e in events {
                steps.append(seen[e.row])
                seen[e.row] += 1
            }
            #expect(steps == steps.sorted(), "events out of step order: \(events)")
        }
        #expect(Set(greedy.joined()).count > 1, "degenerate continuations \(greedy)")
    }

    /// An error thrown by the callback stops generation at that token and is rethrown.
    @Test func onTokenCanStopGeneration() throws {
        struct Enough: Error {}
        let model = try loadFixtureModel("llama_tiny")
        var calls = 0
        #expect(throws: Enough.self) {
            _ = try model.generate(prompts: [[3, 1, 4]], options: .greedy(maxNewTokens: 10)) { _, _ in
                calls += 1
                if calls == 3 { throw Enough() }
            }
        }
        #expect(calls == 3)
    }

    @Test func topPKeepsTheNucleus() {
        var g = RandomGenerator(seed: 1)
        let logits: [Float] = [5, 4.9, 0, -1, -2]  // p ~ [0.52, 0.47, 0.004, ...]
        var seen = Set<Int>()
        for _ in 0..<200 {
            seen.insert(
                sampleToken(
                    logits: logits, options: GenerationOptions(temperature: 1, topP: 0.9), generator: &g))
        }
        #expect(seen == [0, 1])
    }

    @Test func promptEmbeddingsWithImageFeatures() throws {
        let model = try loadFixtureModel("llama_tiny")
        let ids = [5, 17, 33, 2, 71]
        let emb = try embedding(IndexTensor(ids), weight: model.model.embedTokens.weight.data)
        #expect(
            try model.generate(promptEmbeddings: [emb], options: .greedy(maxNewTokens: 5))
                == model.generate(prompts: [ids], options: .greedy(maxNewTokens: 5)))
        // Two "image" rows among the text embeddings: cached generation equals recomputing from embeddings.
        let image = randomTensor([2, 32], seed: 3)
        let mixed = try Tensor.concatenate(
            [emb.narrow(axis: 0, start: 0, length: 2), image, emb.narrow(axis: 0, start: 2, length: 3)],
            axis: 0)
        let got = try model.generate(promptEmbeddings: [mixed], options: .greedy(maxNewTokens: 4))[0]
        var seq = mixed
        var expected: [Int] = []
        for _ in 0..<4 {
            let h = try model.hiddenStates(DecoderInput(embeddings: seq.unsqueezed(0)))
            let next = try model.logits(hidden: h, at: IndexTensor([seq.shape[0] - 1])).argmax(axis: 1)
                .values[0]
            expected.append(next)
            seq = try Tensor.concatenate(
                [seq, embedding(IndexTensor([next]), weight: model.model.embedTokens.weight.data)], axis: 0)
        }
        #expect(got == expected)
    }
}

@Suite struct ConversationTests {
    @Test func vicunaMarksOnlyAnswers() throws {
        let tok = try fixtureTokenizer("bytelevel")
        tok.addSpecialTokens(["<image>", "</s>"])
        let turns = [
            ConversationTurn(.user, "<image>\nWhat is shown?"), ConversationTurn(.assistant, "A red cube."),
            ConversationTurn(.user, "Which color?"), ConversationTurn(.assistant, "Red."),
        ]
        let f = try tok.format(turns, template: .vicunaV1())
        #expect(f.ids.count == f.labels.count)
        #expect(
            f.text == "<|begin_of_text|>" + ConversationTemplate.vicunaSystem
                + " USER: <image>\nWhat is shown? ASSISTANT: A red cube.</s>USER: Which color? ASSISTANT: Red.</s>"
        )
        #expect(f.assistantSpans.count == 2)
        #expect(f.assistantSpans.map { tok.decode(Array(f.ids[$0])) } == [" A red cube.</s>", " Red.</s>"])
        let supervised = f.labels.indices.filter { f.labels[$0] != -100 }
        #expect(supervised == f.assistantSpans.flatMap { Array($0) })
        // For a byte-level tokenizer the pieces split at pre-token boundaries: same ids as the whole text.
        #expect(
            f.ids == tok.encode(String(f.text.dropFirst("<|begin_of_text|>".count)), addSpecialTokens: true))
        #expect(throws: TokenizerError.self) {
            try tok.format([ConversationTurn(.assistant, "hi")], template: .plain)
        }
    }

    @Test func sentencepieceAnswersStartWithTheSpaceMarker() throws {
        let tok = try fixtureTokenizer("bytefallback")
        let f = try tok.format(
            [ConversationTurn(.user, "Hi"), ConversationTurn(.assistant, "Hello there")],
            template: .vicunaV1())
        #expect(f.ids.first == 1)  // <s>
        let answer = Array(f.ids[f.assistantSpans[0]])
        #expect(tok.token(of: answer[0])!.hasPrefix("\u{2581}"))
        #expect(answer.last == 2)  // </s>
        let plain = try tok.format(
            [ConversationTurn(.user, "<s>"), ConversationTurn(.assistant, "a caption")], template: .plain,
            addBOS: false)
        #expect(plain.labels.first == -100 && plain.labels.last != -100)
    }
}
