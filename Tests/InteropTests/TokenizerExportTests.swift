import Bridges
import Datasets
import Foundation
import Language
import SightlineTestSupport
import Tensor
import Testing
import Training
import Vision

/// The tokenizer an HF Llava export carries: transformers' `AutoTokenizer` and `AutoProcessor` load it
/// as it is and give the ids our tokenizer gives (the synthetic world's word vocabulary, a byte-level
/// BPE, a sentencepiece-style BPE with byte fallback), and `weights import` reads it back.
@Suite struct TokenizerExportTests {
    /// The kinds of tokenizer a model can carry.
    enum Kind: String, CaseIterable, CustomStringConvertible {
        /// `SyntheticVocabulary` (what the stages train with), written as a WordLevel tokenizer.
        case syntheticWords
        /// The committed byte-level BPE of the synthetic world (`<image>` is id 1).
        case byteLevelBPE
        /// A sentencepiece-style BPE (Llama 2: metaspace, byte fallback, `<s>` template) with `<image>`
        /// added after its vocabulary, as LLaVA adds it.
        case sentencepieceBPE
        var description: String { rawValue }
    }

    /// The tokenizer of a kind (written into `dir` when it is a file), its image id and special ids.
    static func tokenizer(_ kind: Kind, in dir: String) throws -> (ModelTokenizer, image: Int, bos: Int, eos: Int, pad: Int?) {
        switch kind {
        case .syntheticWords:
            return (.syntheticWords, SyntheticVocabulary.image, SyntheticVocabulary.bos, SyntheticVocabulary.eos, SyntheticVocabulary.pad)
        case .byteLevelBPE:
            let path = fixtureDirectory("datasets").appendingPathComponent("synthetic/tokenizer.json").path
            return (.file(path), 1, 2, 3, 0)
        case .sentencepieceBPE:
            let source = fixtureDirectory("language").appendingPathComponent("tokenizer_bytefallback.json")
            var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
            let image = try Tokenizer(contentsOf: source).vocabularySize
            var added = (json["added_tokens"] as? [[String: Any]]) ?? []
            added.append([
                "id": image, "content": "<image>", "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true,
            ])
            json["added_tokens"] = added
            let path = dir + "/sentencepiece-tokenizer.json"
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
            return (.file(path), image, 1, 2, nil)
        }
    }

    /// A tiny projection model (32-pixel images, 8-pixel patches: 16 image tokens) whose embeddings
    /// have `vocab` rows.
    static func model(vocab: Int, image: Int, bos: Int, eos: Int, pad: Int?) throws -> MultimodalModel {
        let config = ModelConfig(
            vision: CLIPVisionConfig(
                imageSize: 32, patchSize: 8, hiddenSize: 16, numHiddenLayers: 3, numAttentionHeads: 2,
                intermediateSize: 32),
            connector: .projection(ProjectionConfig(visionDim: 16, llmDim: 24, depth: 2, featureLevel: -2)),
            languageModel: LlamaConfig(
                vocabSize: vocab, hiddenSize: 24, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                numKeyValueHeads: 2, maxPositionEmbeddings: 512, bosTokenId: bos, eosTokenId: eos, padTokenId: pad),
            imageTokenId: image)
        let m = try MultimodalModel(config: config)
        randomizeParameters(m, seed: 3)
        m.eval()
        return m
    }

    /// Prompts in LLaVA's form around the synthetic world's own text, plus words and punctuation it
    /// has never seen.
    static func prompts() throws -> [String] {
        let world = try SyntheticWorld(seed: 4)
        let lines = world.corpus(count: 3, split: .heldOut).map { String($0.prefix(160)) }
        return lines.map { "USER: <image>\n" + $0 + "\nASSISTANT:" } + [
            "USER: <image>\nwhat colour is the zebra?\nASSISTANT: red, I think.",
            "USER: two pictures <image> and <image>\nwhich has more objects ?\nASSISTANT:",
        ]
    }

    static let script = """
        import json, sys
        import numpy as np
        from PIL import Image
        from transformers import AutoProcessor, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(sys.argv[1])
        proc = AutoProcessor.from_pretrained(sys.argv[1])
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
        out = {"tokenizer": type(tok).__name__, "processor": type(proc).__name__,
               "image_token_id": proc.image_token_id, "bos": tok.bos_token_id, "eos": tok.eos_token_id,
               "pad": tok.pad_token_id, "prompts": []}
        for p in json.loads(sys.argv[2]):
            ids = tok(p)["input_ids"]
            n = p.count("<image>")
            x = proc(text=p, images=[image] * n, return_tensors="np")
            out["prompts"].append({"ids": ids, "decoded": tok.decode(ids),
                                   "decoded_skip": tok.decode(ids, skip_special_tokens=True),
                                   "processor_ids": x["input_ids"][0].tolist(),
                                   "pixels": list(x["pixel_values"].shape)})
        # What docs/export.md shows: the processor's output straight into the model.
        import torch
        from transformers import LlavaForConditionalGeneration
        model = LlavaForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
        with torch.no_grad():
            x = proc(text=json.loads(sys.argv[2])[0], images=image, return_tensors="pt")
            out["logits_shape"] = list(model(**x).logits.shape)
        print(json.dumps(out))
        """

    @Test(Python.requires("torch", "transformers", "safetensors", "PIL"), arguments: Kind.allCases)
    func hfLlavaExportCarriesATokenizerTransformersLoads(kind: Kind) throws {
        let dir = try temporaryDirectory("llava-tokenizer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (source, image, bos, eos, pad) = try Self.tokenizer(kind, in: dir)
        let ours: Tokenizer
        switch source {
        case .syntheticWords: ours = try Tokenizer(json: SyntheticVocabulary().tokenizerJSON())
        case .file(let path): ours = try Tokenizer(contentsOf: URL(fileURLWithPath: path))
        }
        let model = try Self.model(vocab: ours.vocabularySize, image: image, bos: bos, eos: eos, pad: pad)
        let tokens = try model.connector.tokenCount(grid: .square(4))
        let summary = try ModelExport.export(model, lora: nil, to: dir + "/llava", layout: .hfLlava, tokenizer: source)
        #expect(summary.files.contains(dir + "/llava/tokenizer.json") && summary.files.contains(dir + "/llava/tokenizer_config.json"))
        // The exported file reads back in our tokenizer.
        let exported = try Tokenizer(contentsOf: URL(fileURLWithPath: dir + "/llava/tokenizer.json"))
        let prompts = try Self.prompts()
        let arg = String(decoding: try JSONSerialization.data(withJSONObject: prompts), as: UTF8.self)
        let run = try Python.run(["-c", Self.script, dir + "/llava", arg], timeout: 300, environment: sightlineTorchEnvironment)
        guard run.status == 0 else { throw TestFailure("python failed (status \(run.status)):\n\(run.output)") }
        let line = try #require(run.stdout.split(separator: "\n").last { $0.hasPrefix("{") })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(report["processor"] as? String == "LlavaProcessor", "\(report["processor"] ?? "nil")")
        #expect(report["image_token_id"] as? Int == image)
        #expect(report["bos"] as? Int == bos && report["eos"] as? Int == eos)
        #expect(report["pad"] as? Int == pad)
        let first = ours.encode(prompts[0], addSpecialTokens: true).flatMap { $0 == image ? Array(repeating: image, count: tokens) : [$0] }
        #expect(report["logits_shape"] as? [Int] == [1, first.count, ours.vocabularySize])
        let results = try #require(report["prompts"] as? [[String: Any]])
        #expect(results.count == prompts.count)
        let vocabulary = SyntheticVocabulary()
        for (prompt, r) in zip(prompts, results) {
            let hf = try #require(r["ids"] as? [Int])
            let mine = exported.encode(prompt, addSpecialTokens: true)
            #expect(hf == mine, "\(kind) \(prompt.debugDescription): HF \(hf), ours \(mine)")
            #expect(mine == ours.encode(prompt, addSpecialTokens: true), "the exported file encodes as its source")
            #expect(r["decoded"] as? String == exported.decode(hf), "\(kind) \(prompt.debugDescription)")
            #expect(r["decoded_skip"] as? String == exported.decode(hf, skipSpecialTokens: true))
            if kind == .syntheticWords {
                // The ids the stages train on: `<s>`, then the words of the text.
                #expect(hf == [SyntheticVocabulary.bos] + vocabulary.encode(prompt), "\(prompt.debugDescription)")
                let text = try #require(r["decoded_skip"] as? String)
                // Decoding drops the special tokens (`<image>`, `<unk>`); the rest reads back to the same ids.
                let kept = vocabulary.encode(prompt).filter { $0 != image && $0 != SyntheticVocabulary.unknown }
                #expect(vocabulary.encode(text) == kept, "\(text.debugDescription)")
            }
            // The processor expands each `<image>` to the connector's token count.
            let expanded = hf.flatMap { $0 == image ? Array(repeating: image, count: tokens) : [$0] }
            #expect(r["processor_ids"] as? [Int] == expanded, "\(kind) \(prompt.debugDescription)")
            #expect(r["pixels"] as? [Int] == [prompt.components(separatedBy: "<image>").count - 1, 3, 32, 32])
        }
        // `weights import` reads the tokenizer back and puts it in the stage folder it writes.
        let imported = try ImportedModel(directory: dir + "/llava")
        let back = try #require(imported.tokenizer)
        #expect(imported.tokenizerNote == nil, "\(imported.tokenizerNote ?? "")")
        #expect(back.vocabularySize == ours.vocabularySize)
        for p in prompts { #expect(back.encode(p, addSpecialTokens: true) == ours.encode(p, addSpecialTokens: true)) }
        try imported.write(to: dir + "/run/pretrain", sourceDirectory: dir + "/llava")
        #expect(FileManager.default.contentsEqual(atPath: dir + "/run/pretrain/tokenizer.json", andPath: dir + "/llava/tokenizer.json"))
        #expect(ModelTokenizer.detect(stages: [dir + "/run/finetune", dir + "/run/pretrain"], vocabularySize: 1) == .file(dir + "/run/pretrain/tokenizer.json"))
    }

    /// A tokenizer that does not fit the model is refused with the file named.
    @Test func exportRefusesATokenizerThatDoesNotFitTheModel() throws {
        let dir = try temporaryDirectory("llava-tokenizer-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let words = SyntheticVocabulary().count
        // Fewer embedding rows than ids.
        let small = try Self.model(vocab: words - 1, image: 1, bos: 2, eos: 3, pad: 0)
        #expect(throws: TrainingError.self) {
            try ModelExport.export(small, lora: nil, to: dir + "/a", layout: .hfLlava, tokenizer: .syntheticWords)
        }
        // An image token id the tokenizer has no token for.
        let bigger = try Self.model(vocab: words + 10, image: words + 5, bos: 2, eos: 3, pad: 0)
        do {
            try ModelExport.export(bigger, lora: nil, to: dir + "/b", layout: .hfLlava, tokenizer: .syntheticWords)
            Issue.record("a tokenizer without the image token was accepted")
        } catch let e as TrainingError {
            #expect("\(e)".contains("image token id \(words + 5)"), "\(e)")
        }
        let missing = dir + "/nowhere/tokenizer.json"
        do {
            try ModelExport.export(bigger, lora: nil, to: dir + "/c", layout: .hfLlava, tokenizer: .file(missing))
            Issue.record("a missing tokenizer file was accepted")
        } catch let e as TrainingError {
            #expect("\(e)".contains(missing), "\(e)")
        }
        // Detection: the synthetic words only for their vocabulary size.
        #expect(ModelTokenizer.detect(stages: [dir + "/none"], vocabularySize: words) == .syntheticWords)
        #expect(ModelTokenizer.detect(stages: [dir + "/none"], vocabularySize: words + 1) == nil)
    }
}
