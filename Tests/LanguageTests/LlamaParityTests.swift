import Foundation
import Language
import Layers
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

// Parity with HF transformers' LlamaForCausalLM on the randomly initialised tiny models written by
// scripts/make_language_fixtures.py (float64 references). GQA (4 query heads, 2 KV heads), Llama-3
// rope_scaling, untied head; and a tied-embedding variant.

@Suite struct LlamaParityTests {
    @Test func configReadsTransformers5RopeParameters() throws {
        let c = try LlamaConfig.load(
            contentsOf: languageFixtures.appendingPathComponent("llama_tiny/config.json"))
        #expect(c.numKeyValueHeads == 2 && c.headDim == 8 && c.rmsNormEps == 1e-5)
        #expect(
            c.ropeScaling
                == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64))
        // Round trip through our (transformers 4) form.
        let back = try JSONDecoder().decode(LlamaConfig.self, from: c.jsonData())
        #expect(back == c)
        let v4 =
            #"{"vocab_size": 8, "hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,"#
            + #" "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}, "eos_token_id": [7, 9]}"#
        let old = try JSONDecoder().decode(LlamaConfig.self, from: Data(v4.utf8))
        #expect(old.ropeTheta == 500000 && old.ropeScaling == .linear(factor: 2) && old.eosTokenId == 7)
    }

    @Test func llama3RopeScalingTouchesEveryBand() throws {
        let c = try LlamaConfig.load(
            contentsOf: languageFixtures.appendingPathComponent("llama_tiny/config.json"))
        var plain = c
        plain.ropeScaling = nil
        let scaled = RotaryEmbedding(config: c).inverseFrequencies
        let base = RotaryEmbedding(config: plain).inverseFrequencies
        // head_dim 8: wavelengths 6.3 (< 16: kept), 63 (between: smoothed), 628 and 6283 (> 64: divided by 8).
        #expect(scaled[0] == base[0])
        #expect(scaled[1] < base[1] && scaled[1] > base[1] / 8)
        #expect(abs(scaled[2] - base[2] / 8) < 1e-15 && abs(scaled[3] - base[3] / 8) < 1e-15)
    }

    @Test func causalLogitsAndLossMatchHF() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_causal", group: "language")
        let ids = try f.indexTensor("input_ids"), labels = try f.indexTensor("labels")
        let h = try model.hiddenStates(DecoderInput(tokens: ids))
        let logits = try model.logits(hidden: h)
        let err = relErr(logits, try f.tensor("logits"))
        let torch32 = try f.double("torch_float32_logits_rel_err")
        print("llama parity: logits rel err \(err) (torch float32 vs float64: \(torch32))")
        #expect(err < 1e-4, "logits rel err \(err) (torch float32: \(torch32))")
        let loss = try model.nextTokenLoss(hidden: h, labels: labels)
        let lossErr = relErr(loss.meanLoss, try f.tensor("loss"))
        #expect(lossErr < 1e-5, "loss rel err \(lossErr)")
        #expect(loss.count == 22 - 2 - 1)  // 11 shifted targets per row; labels 1, 2 of row 0 and 7 of row 1 ignored
    }

    @Test func gradientOfEveryParameterMatchesHF() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_causal", group: "language")
        let ids = try f.indexTensor("input_ids"), labels = try f.indexTensor("labels")
        let ref = try Safetensors32.read(
            languageFixtures.appendingPathComponent("llama_tiny_grads.safetensors"))
        let params = model.namedParameters()
        let (_, grads) = try valueAndGradient(at: params) {
            let h = try model.hiddenStates(DecoderInput(tokens: ids))
            return try model.nextTokenLoss(hidden: h, labels: labels).meanLoss
        }
        #expect(Set(ref.keys) == Set(params.map(\.0)))
        var worst = 0.0
        for (name, _) in params {
            let g = try #require(grads[name], "no gradient for \(name)")
            let r = try #require(ref[name])
            let err = relErr(g, r)
            worst = max(worst, err)
            #expect(err < 1e-3, "\(name): gradient rel err \(err)")
        }
        print("llama parity: worst parameter-gradient rel err \(worst) over \(params.count) parameters")
    }

    @Test func packedDocumentsMatchSeparateRuns() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_packed", group: "language")
        let ids = try f.indexTensor("input_ids"), docs = try f.indexTensor("document_ids")
        let ref = try Safetensors32.read(
            languageFixtures.appendingPathComponent("llama_tiny_packed_grads.safetensors"))
        let params = model.namedParameters()
        var perToken: [Float?] = []
        var logits = Tensor(0)
        let (_, grads) = try valueAndGradient(at: params) {
            let h = try model.hiddenStates(DecoderInput(tokens: ids, documentIds: docs))
            logits = try model.logits(hidden: h).detached()
            perToken = try model.nextTokenLosses(hidden: h, labels: ids, documentIds: docs)
            return try model.nextTokenLoss(hidden: h, labels: ids, documentIds: docs).meanLoss
        }
        #expect(Set(ref.keys) == Set(params.map(\.0)), "the fixture's gradients are exactly the parameters'")
        let logitErr = relErr(try logits.reshaped([16, 96]), try f.tensor("logits"))
        #expect(logitErr < 1e-4, "packed logits vs separate documents: rel err \(logitErr)")
        // Per-token losses: the last token of each document predicts nothing.
        #expect(perToken.enumerated().filter { $0.element == nil }.map(\.offset) == [4, 11, 15])
        let tokenErr = relativeError(perToken.compactMap { $0 }, try f.tensor("token_losses").scalars)
        #expect(tokenErr < 1e-5, "per-token losses rel err \(tokenErr)")
        var worst = 0.0
        for (name, _) in params {
            let err = relErr(try #require(grads[name]), try #require(ref[name]))
            worst = max(worst, err)
            #expect(err < 1e-3, "\(name): packed gradient rel err \(err)")
        }
        print(
            "llama parity: packed vs separate documents: logits \(logitErr), token losses \(tokenErr), worst gradient \(worst)"
        )
    }

    @Test func packedRowEqualsSeparateRowsInSwift() throws {
        // Independent of the fixtures' gradients: the packed forward equals three separate forwards.
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_packed", group: "language")
        let ids = try f.indexTensor("input_ids"), docs = try f.indexTensor("document_ids")
        let causal = try model(ids).reshaped([16, 96])
        let packed = try model.logits(
            hidden: model.hiddenStates(DecoderInput(tokens: ids, documentIds: docs))
        ).reshaped([16, 96])
        var start = 0
        for n in [5, 7, 4] {
            let sep = try model(IndexTensor(shape: [1, n], values: Array(ids.values[start..<(start + n)])))
                .reshaped([n, 96])
            let err = relErr(try packed.narrow(axis: 0, start: start, length: n), sep)
            #expect(err < 1e-5, "document at \(start): packed vs separate rel err \(err)")
            if start > 0 {
                let leak = relErr(try causal.narrow(axis: 0, start: start, length: n), sep)
                #expect(leak > 1e-3, "without document ids later documents see earlier ones (diff \(leak))")
            }
            start += n
        }
    }

    @Test func gradientCheckpointingGivesTheSameGradients() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_packed", group: "language")
        let ids = try f.indexTensor("input_ids"), docs = try f.indexTensor("document_ids")
        func run() throws -> Gradients {
            try valueAndGradient(at: model.namedParameters()) {
                try model.nextTokenLoss(
                    hidden: model.hiddenStates(DecoderInput(tokens: ids, documentIds: docs)), labels: ids,
                    documentIds: docs
                ).meanLoss
            }.gradients
        }
        let plain = try run()
        model.gradientCheckpointing = true
        let recomputed = try run()
        #expect(plain.count == 21 && recomputed.count == 21)
        for (name, g) in plain { #expect(relErr(try #require(recomputed[name]), g) < 1e-6, "\(name)") }
        try model.attachLoRA(LoRAConfig(r: 2, loraAlpha: 2, loraDropout: 0.1))
        model.train()
        #expect(throws: TensorError.self) { try run() }
    }

    @Test func tiedEmbeddingsMatchHF() throws {
        let model = try loadFixtureModel("llama_tied")
        #expect(model.lmHead == nil)
        #expect(!model.namedParameters().contains { $0.0 == "lm_head.weight" })
        let f = try loadFixtureCase("llama_tied", group: "language")
        let err = relErr(try model(f.indexTensor("input_ids")), try f.tensor("logits"))
        #expect(err < 1e-4, "tied logits rel err \(err)")
    }

    @Test func logitsAtRequestedPositionsOnly() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_causal", group: "language")
        let h = try model.hiddenStates(DecoderInput(tokens: f.indexTensor("input_ids")))
        let all = try model.logits(hidden: h).reshaped([24, 96])
        let some = try model.logits(hidden: h, at: IndexTensor([3, 17, 23]))
        #expect(some.shape == [3, 96])
        #expect(relErr(some, try all.indexSelect(axis: 0, indices: IndexTensor([3, 17, 23]))) < 1e-6)
        // Embeddings in place of tokens give the same result.
        let e = try embedding(f.indexTensor("input_ids"), weight: model.model.embedTokens.weight.data)
        let viaEmb = try model.logits(hidden: model.hiddenStates(DecoderInput(embeddings: e))).reshaped([
            24, 96,
        ])
        #expect(relErr(viaEmb, all) < 1e-6)
    }

    @Test func exportHasHFNamesAndShapes() throws {
        let names =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: languageFixtures.appendingPathComponent("peft_names.json")))
            as! [String: Any]
        for sub in ["llama_tiny", "llama_tied"] {
            let hf = names[sub] as! [String: [Int]]
            let model = try loadFixtureModel(sub)
            let ours = try model.huggingFaceStateDict()
            #expect(
                Dictionary(uniqueKeysWithValues: ours.map { ($0.0, $0.1.shape) }) == hf,
                "\(sub): exported names/shapes differ from HF's")
        }
    }

    @Test func loadsShardedDirectories() throws {
        let src = languageFixtures.appendingPathComponent("llama_tiny")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sightline-shards-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(
            at: src.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json"))
        let all = try Safetensors32.read(src.appendingPathComponent("model.safetensors")).sorted {
            $0.key < $1.key
        }
        let half = all.count / 2
        var map: [String: String] = [:]
        for (i, part) in [Array(all[..<half]), Array(all[half...])].enumerated() {
            let name = "model-0000\(i + 1)-of-00002.safetensors"
            try Safetensors32.write(part.map { ($0.key, $0.value) }, to: dir.appendingPathComponent(name))
            for (k, _) in part { map[k] = name }
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [String: String](), "weight_map": map]).write(
            to: dir.appendingPathComponent("model.safetensors.index.json"))
        let (sharded, report) = try LlamaForCausalLM.fromPretrained(directory: dir.path)
        #expect(report.loaded.count == 21 && report.isClean, "\(report)")
        let ids = try IndexTensor(shape: [1, 4], values: [1, 2, 3, 4])
        #expect(try sharded(ids).scalars == loadFixtureModel("llama_tiny")(ids).scalars)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        do {
            _ = try LlamaForCausalLM.fromPretrained(directory: dir.path)
            Issue.record("a directory with a missing shard loaded")
        } catch let e as TensorFileError {
            // The index that lists the missing shard is the file named; the shard is in the message.
            #expect(e.file.hasSuffix("model.safetensors.index.json"), "\(e)")
            #expect(e.message.contains("model-00002-of-00002.safetensors"), "\(e)")
        }
    }

    @Test func badInputsThrow() throws {
        let model = try loadFixtureModel("llama_tied")
        #expect(throws: TensorError.self) { try model.hiddenStates(DecoderInput()) }
        #expect(throws: TensorError.self) { try model(IndexTensor(shape: [1, 2], values: [1, 64])) }
        #expect(throws: TensorError.self) {
            try model.hiddenStates(
                DecoderInput(
                    tokens: IndexTensor(shape: [1, 2], values: [1, 2]), documentIds: IndexTensor([0, 0, 1])))
        }
        var bad = model.config
        bad.numKeyValueHeads = 3
        #expect(throws: TensorError.self) { try LlamaForCausalLM(config: bad) }
    }
}

@Suite struct LlamaExportPythonTests {
    @Test(Python.requires("torch", "transformers", "safetensors")) func transformersLoadsOurExport() throws {
        let dir = try freshTemporaryDirectory("llama")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Imported HF model, changed (LoRA merged in on export), written as HF writes checkpoints.
        let model = try loadFixtureModel("llama_tiny")
        try model.attachLoRA(
            LoRAConfig(r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ["q_proj", "down_proj"]))
        var g = RandomGenerator(seed: 4)
        for (_, l) in model.loraModules {
            l.lora!.b.data = Tensor.normal(l.lora!.b.shape, std: 0.3, generator: &g)
        }
        let ids = try IndexTensor(shape: [1, 7], values: [4, 8, 15, 16, 23, 42, 5])
        #expect(
            Set(try model.huggingFaceStateDict().map(\.0))
                == Set(try loadFixtureModel("llama_tiny").huggingFaceStateDict().map(\.0)))
        try Safetensors32.write(
            model.huggingFaceStateDict(), to: dir.appendingPathComponent("model.safetensors"))
        try model.config.jsonData().write(to: dir.appendingPathComponent("config.json"))
        try Safetensors32.write(
            [("logits", try model(ids))], to: dir.appendingPathComponent("expected.safetensors"))
        let script = """
            import sys
            import torch, transformers
            from safetensors.torch import load_file
            from transformers import LlamaForCausalLM
            m, info = LlamaForCausalLM.from_pretrained(sys.argv[1], output_loading_info=True)
            print("MISSING", len(info["missing_keys"]), "UNEXPECTED", len(info["unexpected_keys"]), "MISMATCHED", len(info["mismatched_keys"]))
            with torch.no_grad():
                got = m.eval()(input_ids=torch.tensor([[4, 8, 15, 16, 23, 42, 5]])).logits
            ref = load_file(sys.argv[1] + "/expected.safetensors")["logits"]
            print("REL", ((got - ref).abs().max() / ref.abs().max()).item())
            """
        let run = try Python.run(["-c", script, dir.path])
        #expect(run.status == 0, "python failed: \(run.output)")
        let out = run.stdout
        #expect(out.contains("MISSING 0 UNEXPECTED 0 MISMATCHED 0"), "transformers said: \(out)")
        let rel = try #require(
            out.split(separator: "\n").first { $0.hasPrefix("REL") }.flatMap {
                Double($0.split(separator: " ")[1])
            }, "python said: \(out)")
        print("transformers loaded our export: logits rel err \(rel)")
        #expect(rel < 1e-4)
    }
}
