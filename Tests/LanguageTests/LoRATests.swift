import Foundation
import Language
import Layers
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

// LoRA against real PEFT (fixtures from scripts/make_language_fixtures.py): same names and shapes,
// same logits and gradients with PEFT's saved adapter; fresh adapters change nothing; training moves
// only adapters; merge/unmerge are exact up to fp32 rounding.

@Suite struct LoRATests {
    func peftConfig() throws -> LoRAConfig {
        try JSONDecoder().decode(
            LoRAConfig.self,
            from: Data(
                contentsOf: languageFixtures.appendingPathComponent("llama_tiny_lora/adapter_config.json")))
    }

    @Test func readsPeftAdapterConfig() throws {
        let c = try peftConfig()
        #expect(c.r == 4 && c.loraAlpha == 8 && c.scale == 2 && c.loraDropout == 0)
        #expect(Set(c.targetModules) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"])
        #expect(c.targets("model.layers.1.mlp.gate_proj") && !c.targets("model.layers.1.mlp.up_proj"))
        let re = LoRAConfig(targetPattern: #"model\.layers\.1\..*(q|v)_proj"#)
        #expect(
            re.targets("model.layers.1.self_attn.v_proj") && !re.targets("model.layers.0.self_attn.v_proj"))
    }

    @Test func peftAdapterGivesPeftLogitsAndGradients() throws {
        let model = try loadFixtureModel("llama_tiny")
        let config = try peftConfig()
        let adapted = try model.attachLoRA(config)
        #expect(adapted.count == 2 * 5)
        let file = try openTensorSource(
            languageFixtures.appendingPathComponent("llama_tiny_lora/adapter_model.safetensors").path)
        let report = try WeightLoader.loadLoRAAdapter(file, into: model, config: config)
        #expect(report.loaded.count == 20 && report.isClean && report.skipped.isEmpty, "\(report)")
        let f = try loadFixtureCase("lora_tiny", group: "language")
        let ids = try f.indexTensor("input_ids"), labels = try f.indexTensor("labels")
        let trainable = model.trainableParameters()
        #expect(trainable.count == 20 && trainable.allSatisfy { $0.0.contains(".lora_") })
        var logits = Tensor(0)
        let (_, grads) = try valueAndGradient(at: trainable) {
            let h = try model.hiddenStates(DecoderInput(tokens: ids))
            logits = try model.logits(hidden: h).detached()
            return try model.nextTokenLoss(hidden: h, labels: labels).meanLoss
        }
        let err = relErr(logits, try f.tensor("logits"))
        #expect(err < 1e-4, "LoRA logits vs PEFT: rel err \(err)")
        let ref = try Safetensors32.read(languageFixtures.appendingPathComponent("lora_grads.safetensors"))
        #expect(ref.count == 20)
        var worst = 0.0
        for (name, _) in trainable {
            let r = try #require(ref[peftPrefix + name], "PEFT has no gradient named \(peftPrefix + name)")
            let e = relErr(try #require(grads[name]), r)
            worst = max(worst, e)
            #expect(e < 1e-3, "\(name): gradient rel err \(e)")
        }
        print("lora parity: logits rel err \(err), worst adapter-gradient rel err \(worst)")
        // Merged: equal to PEFT's merge_and_unload and to the unmerged model.
        try model.mergeLoRA()
        let merged = try model(ids)
        #expect(relErr(merged, try f.tensor("merged_logits")) < 1e-4)
        #expect(relErr(merged, logits) < 1e-5, "merged vs unmerged \(relErr(merged, logits))")
        try model.unmergeLoRA()
        #expect(relErr(try model(ids), logits) < 1e-5)
    }

    @Test func freshAdapterChangesNothing() throws {
        let model = try loadFixtureModel("llama_tiny")
        let ids = try IndexTensor(shape: [1, 6], values: [5, 7, 11, 13, 17, 19])
        let before = try model(ids)
        try model.attachLoRA(LoRAConfig(r: 2, loraAlpha: 4, loraDropout: 0.1))
        model.eval()
        #expect(try model(ids).scalars == before.scalars)
        model.train()  // dropout on the adapter input still adds B (A x) = 0
        #expect(try model(ids).scalars == before.scalars)
    }

    @Test func trainingStepsMoveOnlyAdapters() throws {
        let model = try loadFixtureModel("llama_tiny")
        try model.attachLoRA(
            LoRAConfig(
                r: 2, loraAlpha: 4, loraDropout: 0.1, targetModules: ["q_proj", "v_proj", "down_proj"]))
        model.train()
        let before = Dictionary(
            uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.data.scalars) })
        let ids = try IndexTensor(shape: [1, 8], values: [3, 1, 4, 1, 5, 9, 2, 6])
        for _ in 0..<3 {
            let params = model.trainableParameters()
            let (_, grads) = try valueAndGradient(at: params) {
                try model.nextTokenLoss(hidden: model.hiddenStates(DecoderInput(tokens: ids)), labels: ids)
                    .meanLoss
            }
            for (name, p) in params { try p.update { try $0.add(grads[name]!, scaledBy: -0.5) } }
        }
        for (name, p) in model.namedParameters() {
            let changed = p.data.scalars != before[name]!
            #expect(changed == name.contains(".lora_"), "\(name) changed: \(changed)")
        }
    }

    @Test func exportedAdapterHasPeftNamesShapesAndConfig() throws {
        let names =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: languageFixtures.appendingPathComponent("peft_names.json")))
            as! [String: Any]
        let peftTensors = names["peft_modules_to_save"] as! [String: [Int]]
        let peftConfig = names["peft_adapter_config"] as! [String: Any]
        let model = try loadFixtureModel("llama_tiny")
        let config = LoRAConfig(
            r: 2, loraAlpha: 4, loraDropout: 0.1, targetModules: ["q_proj", "v_proj"],
            modulesToSave: ["lm_head"])
        try model.attachLoRA(config)
        #expect(model.lmHead!.weight.isTrainable)
        let ours = model.loraStateDict(config)
        #expect(Dictionary(uniqueKeysWithValues: ours.map { ($0.0, $0.1.shape) }) == peftTensors)
        let json = try JSONSerialization.jsonObject(with: config.jsonData()) as! [String: Any]
        for key in [
            "r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "peft_type", "task_type",
            "bias",
            "use_rslora", "use_dora", "fan_in_fan_out", "init_lora_weights", "inference_mode",
        ] {
            let a = try #require(json[key], "we do not write \(key)")
            let b = try #require(peftConfig[key], "PEFT does not write \(key)")
            if key == "target_modules" {  // PEFT keeps a set: order is arbitrary
                #expect(Set(a as! [String]) == Set(b as! [String]))
            } else {
                #expect(String(describing: a) == String(describing: b), "\(key): ours \(a) vs PEFT \(b)")
            }
        }
        // Round trip through the one loader.
        let other = try loadFixtureModel("llama_tiny")
        try other.attachLoRA(config, seed: 1)
        let report = try WeightLoader.loadLoRAAdapter(InMemoryTensors(NamedTensors(ours)), into: other, config: config)
        #expect(report.loaded.count == ours.count && report.isClean)
        for ((name, t), (_, back)) in zip(ours, other.loraStateDict(config)) {
            #expect(t.scalars == back.scalars, "\(name)")
        }
    }

    /// A PEFT adapter directory (config + `adapter_model.safetensors`) through the one loader gives
    /// PEFT's logits, as attaching by hand and loading the file does.
    @Test func peftAdapterDirectoryLoadsThroughTheOneLoader() throws {
        let model = try loadFixtureModel("llama_tiny")
        let (config, report) = try WeightLoader.loadPEFTAdapter(
            directory: languageFixtures.appendingPathComponent("llama_tiny_lora").path, into: model)
        #expect(config == (try peftConfig()))
        #expect(report.loaded.count == 20 && report.isClean, "\(report)")
        #expect(report.renamed.count == 20 && report.renamed.allSatisfy { $0.fileKey == peftPrefix + $0.name })
        let f = try loadFixtureCase("lora_tiny", group: "language")
        let err = relErr(try model(try f.indexTensor("input_ids")), try f.tensor("logits"))
        #expect(err < 1e-4, "LoRA logits vs PEFT: rel err \(err)")
    }

    /// PEFT's in-memory names carry the adapter name (`lora_A.default.weight`,
    /// `modules_to_save.default.`); the preset removes it, and a named adapter other than `default`
    /// is selected by `adapterName`.
    @Test func peftAdapterNameSegmentIsOptional() throws {
        let config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: ["q_proj", "v_proj"], modulesToSave: ["lm_head"])
        let source = try loadFixtureModel("llama_tiny")
        try source.attachLoRA(config, seed: 3)
        var g = RandomGenerator(seed: 4)
        for (_, l) in source.loraModules { l.lora!.b.data = Tensor.normal(l.lora!.b.shape, std: 0.2, generator: &g) }
        func withSegment(_ adapter: String) -> NamedTensors {
            NamedTensors(
                source.loraStateDict(config).map { name, t in
                    var n = name.replacingOccurrences(of: ".lora_A.", with: ".lora_A.\(adapter).")
                        .replacingOccurrences(of: ".lora_B.", with: ".lora_B.\(adapter).")
                    if n.hasPrefix(peftPrefix + "lm_head.") {
                        n = n.replacingOccurrences(of: "lm_head.", with: "lm_head.modules_to_save.\(adapter).")
                    }
                    return (n, t)
                })
        }
        for (tensors, adapter) in [(withSegment("default"), "default"), (withSegment("extra"), "extra")] {
            let target = try loadFixtureModel("llama_tiny")
            try target.attachLoRA(config)
            let report = try WeightLoader.loadLoRAAdapter(
                InMemoryTensors(tensors), into: target, config: config, options: .peftAdapter(adapterName: adapter))
            #expect(report.isClean && report.loaded.count == tensors.count, "\(report)")
            for ((name, a), (_, b)) in zip(source.loraStateDict(config), target.loraStateDict(config)) {
                #expect(a.scalars == b.scalars, "\(adapter): \(name)")
            }
        }
        // The wrong adapter name leaves every key unmatched: a strict load lists them all.
        let target = try loadFixtureModel("llama_tiny")
        try target.attachLoRA(config)
        let error = try #require(throws: LoadError.self) {
            try WeightLoader.loadLoRAAdapter(InMemoryTensors(withSegment("extra")), into: target, config: config)
        }
        let n = withSegment("extra").count
        #expect(n == 9 && error.report.unexpected.count == n && error.report.missing.count == n, "\(error)")
    }

    /// A strict adapter load names each problem: a tensor of the wrong shape (both shapes), a key
    /// without PEFT's prefix (skipped, so its tensor is missing), and a model without adapters.
    @Test func peftAdapterLoadErrorsNameTheTensor() throws {
        let config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: ["q_proj"])
        let model = try loadFixtureModel("llama_tiny")
        #expect(throws: TensorFileError.self) {
            try WeightLoader.loadLoRAAdapter(InMemoryTensors(NamedTensors()), into: model, config: config)
        }
        try model.attachLoRA(config)
        var tensors = model.loraStateDict(config)
        let (firstName, firstTensor) = tensors[0]
        tensors[0] = (firstName, Tensor.zeros([3, firstTensor.shape[1]]))
        let shape = try #require(throws: LoadError.self) {
            try WeightLoader.loadLoRAAdapter(InMemoryTensors(NamedTensors(tensors)), into: model, config: config)
        }
        let bare = String(firstName.dropFirst(peftPrefix.count))
        #expect(shape.report.shapeMismatches == [.init(name: bare, expected: [2, firstTensor.shape[1]], found: [3, firstTensor.shape[1]])])
        #expect("\(shape)".contains(bare))
        tensors[0] = (bare, firstTensor)
        let unprefixed = try #require(throws: LoadError.self) {
            try WeightLoader.loadLoRAAdapter(InMemoryTensors(NamedTensors(tensors)), into: model, config: config)
        }
        #expect(unprefixed.report.skipped == [bare] && unprefixed.report.missing == [bare])
    }

    /// PEFT's `adapter_model.bin` (torch.save of the same tensors) loads through the same path.
    @Test(Python.requires("torch", "safetensors")) func peftAdapterBinLoads() throws {
        let dir = try freshTemporaryDirectory("lora-bin")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = languageFixtures.appendingPathComponent("llama_tiny_lora")
        try FileManager.default.copyItem(
            at: fixture.appendingPathComponent("adapter_config.json"), to: dir.appendingPathComponent("adapter_config.json"))
        let script = """
            import sys, torch
            from safetensors.torch import load_file
            torch.save(load_file(sys.argv[1]), sys.argv[2])
            """
        let run = try Python.run([
            "-c", script, fixture.appendingPathComponent("adapter_model.safetensors").path,
            dir.appendingPathComponent("adapter_model.bin").path,
        ])
        #expect(run.status == 0, "python failed: \(run.output)")
        let model = try loadFixtureModel("llama_tiny")
        let (_, report) = try WeightLoader.loadPEFTAdapter(directory: dir.path, into: model)
        #expect(report.file.hasSuffix("adapter_model.bin") && report.loaded.count == 20 && report.isClean)
        let f = try loadFixtureCase("lora_tiny", group: "language")
        let err = relErr(try model(try f.indexTensor("input_ids")), try f.tensor("logits"))
        #expect(err < 1e-4, "LoRA logits from adapter_model.bin vs PEFT: rel err \(err)")
    }

    @Test(Python.requires("torch", "transformers", "peft", "safetensors")) func pythonPeftLoadsOurAdapter() throws {
        let dir = try freshTemporaryDirectory("lora")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try loadFixtureModel("llama_tiny")
        let config = LoRAConfig(
            r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ["q_proj", "v_proj", "up_proj"])
        try model.attachLoRA(config, seed: 5)
        for (_, l) in model.loraModules {
            l.lora!.b.data = Tensor.normal(l.lora!.b.shape, std: 0.3, generator: &gen)
        }
        try Safetensors32.write(
            model.loraStateDict(config), to: dir.appendingPathComponent("adapter_model.safetensors"))
        try config.jsonData().write(to: dir.appendingPathComponent("adapter_config.json"))
        let ids = try IndexTensor(shape: [1, 7], values: [4, 8, 15, 16, 23, 42, 5])
        try Safetensors32.write(
            [("logits", try model(ids))], to: dir.appendingPathComponent("expected.safetensors"))
        let script = """
            import sys
            import torch, peft, transformers
            from peft import PeftModel
            from safetensors.torch import load_file
            from transformers import LlamaForCausalLM
            base = LlamaForCausalLM.from_pretrained(sys.argv[1]).eval()
            m = PeftModel.from_pretrained(base, sys.argv[2]).eval()
            ids = torch.tensor([[4, 8, 15, 16, 23, 42, 5]])
            with torch.no_grad():
                got = m(input_ids=ids).logits
            ref = load_file(sys.argv[2] + "/expected.safetensors")["logits"]
            err = ((got - ref).abs().max() / ref.abs().max()).item()
            print("REL", err)
            """
        let run = try Python.run(["-c", script, languageFixtures.appendingPathComponent("llama_tiny").path, dir.path])
        #expect(run.status == 0, "python failed: \(run.output)")
        let out = run.stdout
        let rel = try #require(
            out.split(separator: "\n").first { $0.hasPrefix("REL") }.flatMap {
                Double($0.split(separator: " ")[1])
            }, "python said: \(out)")
        print("PEFT loaded our adapter: logits rel err \(rel)")
        #expect(rel < 1e-4, "PEFT logits from our adapter differ: \(rel)")
    }
}

nonisolated(unsafe) private var gen = RandomGenerator(seed: 99)
