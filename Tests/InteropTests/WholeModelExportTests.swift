import Bridges
import Checkpoint
import Datasets
import Foundation
import Language
import Layers
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing
import Training
import Vision

/// Whole multimodal models out (HDF5 for `sightline_torch`, HF Llava for transformers, the
/// Chain-of-Sight authors' layout, PEFT adapters) and back in, checked against live torch /
/// transformers / peft.
@Suite struct WholeModelExportTests {
    /// A tiny model: 32-pixel images, 8-pixel patches (a 4x4 grid), a 3-layer tower, a 2-layer decoder.
    static func config(_ connector: ConnectorConfiguration, tied: Bool = false) -> ModelConfig {
        ModelConfig(
            vision: CLIPVisionConfig(
                imageSize: 32, patchSize: 8, hiddenSize: 16, numHiddenLayers: 3, numAttentionHeads: 2,
                intermediateSize: 32),
            connector: connector,
            languageModel: LlamaConfig(
                vocabSize: 40, hiddenSize: 24, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                numKeyValueHeads: 2, tieWordEmbeddings: tied, bosTokenId: 1, eosTokenId: 2),
            imageTokenId: 39)
    }

    static let chainOfSight = ConnectorConfiguration.chainOfSight(
        ChainOfSightConfig(
            visionDim: 16, dim: 16, llmDim: 24, headDim: 8, mlpRatio: 2, grid: .square(4),
            scales: [WindowScale(windowSize: 4, queries: 2), WindowScale(windowSize: 2, queries: 4)],
            featureLevels: [2, 3]))

    static func projection(depth: Int) -> ConnectorConfiguration {
        .projection(ProjectionConfig(visionDim: 16, llmDim: 24, depth: depth, featureLevel: -2))
    }

    /// A model with O(1) random weights.
    static func model(_ connector: ConnectorConfiguration, seed: UInt64 = 5, tied: Bool = false) throws -> MultimodalModel {
        let m = try MultimodalModel(config: config(connector, tied: tied))
        randomizeParameters(m, seed: seed)
        m.eval()
        return m
    }

    /// One row: `[1, 5, 7] + image + [9, 11, 3]`, the image's placeholders as many as the connector's
    /// tokens; a random 32x32 image.
    static func batch(_ model: MultimodalModel, seed: UInt64 = 9) throws -> (PackedBatch, [Int]) {
        let tokens = try model.connector.tokenCount(grid: .square(4))
        let ids = [1, 5, 7] + Array(repeating: 39, count: tokens) + [9, 11, 3]
        let n = ids.count
        let shape = [1, n]
        let batch = try PackedBatch(
            tokens: IndexTensor(shape: shape, values: ids),
            labels: IndexTensor(shape: shape, values: Array(repeating: -100, count: n)),
            documentIds: IndexTensor(shape: shape, values: Array(repeating: 0, count: n)),
            positionIds: IndexTensor(shape: shape, values: Array(0..<n)),
            placeholders: [ImagePlaceholder(row: 0, start: 3, length: tokens, crops: 1)],
            images: randomTensor([1, 3, 32, 32], seed: seed))
        return (batch, ids)
    }

    /// Writes the pixels and ids a Python run reads.
    static func writeInputs(_ batch: PackedBatch, ids: [Int], to path: String) throws {
        try WeightsFile.write(
            NamedTensors([
                ("pixel_values", batch.images!),
                ("input_ids", try Tensor(shape: [1, ids.count], scalars: ids.map(Float.init))),
            ]), to: path)
    }

    /// Runs Python `code` with `args`; throws with its output when it fails.
    static func python(_ code: String, _ args: [String]) throws -> String {
        let run = try Python.run(["-c", code] + args, timeout: 300, environment: sightlineTorchEnvironment)
        guard run.status == 0 else { throw TestFailure("python failed (status \(run.status)):\n\(run.output)") }
        return run.stdout
    }

    static func expectClose(_ ours: Tensor, _ theirs: Tensor, _ tolerance: Double, _ what: String) {
        guard ours.shape == theirs.shape else {
            Issue.record("\(what): shapes differ, ours \(ours.shape), theirs \(theirs.shape)")
            return
        }
        let e = relativeError(ours.scalars, theirs.scalars)
        #expect(e <= tolerance, "\(what): max|ours - ref| / max|ref| = \(e)")
    }

    // MARK: HDF5 whole model in sightline_torch

    static let wholeModelScript = """
        import sys, torch, sightline_torch as st
        model = st.SightlineMultimodalModel.from_file(sys.argv[1])   # strict
        x = st.load_weights(sys.argv[2])
        with torch.no_grad():
            logits = model(x["pixel_values"], x["input_ids"].long())
        st.save_weights({"logits": logits}, sys.argv[3])
        print(sorted({str(t.dtype) for t in st.load_weights(sys.argv[1]).values()}))
        """

    @Test(Python.requires("torch", "h5py", "transformers"))
    func chainOfSightWholeModelLogitsEqualSightlineTorch() throws {
        let dir = try temporaryDirectory("whole-cos")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try Self.model(Self.chainOfSight)
        let (batch, ids) = try Self.batch(model)
        let ours = try model.logits(batch)
        try ModelExport.export(model, lora: nil, to: dir + "/model.h5")
        try Self.writeInputs(batch, ids: ids, to: dir + "/inputs.h5")
        let out = try Self.python(Self.wholeModelScript, [dir + "/model.h5", dir + "/inputs.h5", dir + "/torch.h5"])
        #expect(out.contains("torch.float32"))
        Self.expectClose(ours, try WeightsFile.open(dir + "/torch.h5").readTensor("logits"), 1e-4, "chain_of_sight logits")
        // The file says what it holds.
        let summary = try #require(try WholeModelSummary(WeightsFile.open(dir + "/model.h5")))
        #expect(summary.tokensPerImage == 2 + 4)  // 2 global queries + 4 windows x 1
        #expect(summary.parts.map(\.name) == ["vision_tower", "multi_modal_projector", "language_model"])
        #expect(summary.parts.map(\.parameters).reduce(0, +) == model.parameterCount())
        #expect(summary.parts[1].parameters == model.connector.parameterCount())
    }

    @Test(Python.requires("torch", "h5py", "transformers"))
    func bfloat16WholeModelLoadsAndMatchesWithinRounding() throws {
        let dir = try temporaryDirectory("whole-bf16")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try Self.model(Self.chainOfSight)
        let (batch, ids) = try Self.batch(model)
        let ours = try model.logits(batch)
        try ModelExport.export(model, lora: nil, to: dir + "/model.h5", dtype: .bfloat16)
        // Our model from the bf16 file: what PyTorch gets.
        let reloaded = try MultimodalModel(config: model.config)
        try WeightsFile.load(into: reloaded, from: dir + "/model.h5")
        reloaded.eval()
        let oursRounded = try reloaded.logits(batch)
        try Self.writeInputs(batch, ids: ids, to: dir + "/inputs.h5")
        let out = try Self.python(Self.wholeModelScript, [dir + "/model.h5", dir + "/inputs.h5", dir + "/torch.h5"])
        #expect(out.contains("torch.bfloat16") && !out.contains("torch.float32"), "\(out)")
        let torch = try WeightsFile.open(dir + "/torch.h5").readTensor("logits")
        Self.expectClose(oursRounded, torch, 1e-4, "bf16 file, ours vs torch")
        let rounding = relativeError(torch.scalars, ours.scalars)
        #expect(rounding > 0 && rounding <= 5e-2, "bf16 vs the float32 model: \(rounding)")
    }

    // MARK: HF Llava

    @Test(Python.requires("torch", "transformers", "safetensors"), arguments: [1, 2])
    func hfLlavaExportLoadsWithNoMissingKeysAndMatches(depth: Int) throws {
        let dir = try temporaryDirectory("llava-out")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try Self.model(Self.projection(depth: depth), tied: depth == 1)
        let (batch, ids) = try Self.batch(model)
        let ours = try model.logits(batch)
        try ModelExport.export(model, lora: nil, to: dir + "/llava", layout: .hfLlava)
        try Self.writeInputs(batch, ids: ids, to: dir + "/inputs.h5")
        let code = """
            import json, sys, torch, sightline_torch as st
            from transformers import LlavaForConditionalGeneration
            model, info = LlavaForConditionalGeneration.from_pretrained(sys.argv[1], output_loading_info=True)
            model.eval()
            x = st.load_weights(sys.argv[2])
            with torch.no_grad():
                logits = model(input_ids=x["input_ids"].long(), pixel_values=x["pixel_values"]).logits
            st.save_weights({"logits": logits}, sys.argv[3])
            c = model.config
            print(json.dumps({"missing": list(info["missing_keys"]), "unexpected": list(info["unexpected_keys"]),
                              "mismatched": [str(m) for m in info["mismatched_keys"]],
                              "image_token_id": c.image_token_id, "layer": c.vision_feature_layer,
                              "strategy": c.vision_feature_select_strategy}))
            """
        let out = try Self.python(code, [dir + "/llava", dir + "/inputs.h5", dir + "/torch.h5"])
        let line = try #require(out.split(separator: "\n").last { $0.hasPrefix("{") })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((report["missing"] as? [Any])?.isEmpty == true, "\(report)")
        #expect((report["unexpected"] as? [Any])?.isEmpty == true, "\(report)")
        #expect((report["mismatched"] as? [Any])?.isEmpty == true, "\(report)")
        #expect(report["image_token_id"] as? Int == 39)
        #expect(report["layer"] as? Int == -2)
        #expect(report["strategy"] as? String == "default")
        Self.expectClose(ours, try WeightsFile.open(dir + "/torch.h5").readTensor("logits"), 1e-4, "depth \(depth) logits")
        // And back: the directory imports to the same tensors.
        let back = try LlavaImport.loadHFLlava(directory: dir + "/llava")
        #expect(back.config.connector == model.config.connector)
        for (name, t) in model.stateDict() {
            #expect(back.tensorSlot(named: name)?.value.scalars == t.scalars, "\(name)")
        }
    }

    /// An HF Llava made by transformers itself (random weights, tiny config over the synthetic
    /// vocabulary) imports with the same logits, and the imported stage folder starts `finetune`.
    @Test(Python.requires("torch", "transformers", "safetensors"))
    func hfLlavaFromTransformersImportsAndFinetunes() throws {
        let dir = try temporaryDirectory("llava-in")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let vocab = SyntheticVocabulary().count
        let code = """
            import sys, torch, sightline_torch as st
            from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
            torch.manual_seed(0)
            vocab, image = int(sys.argv[2]), int(sys.argv[3])
            v = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 image_size=48, patch_size=12)
            t = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, bos_token_id=2, eos_token_id=3,
                            pad_token_id=0, tie_word_embeddings=False)
            c = LlavaConfig(vision_config=v, text_config=t, image_token_id=image, vision_feature_layer=-2,
                            vision_feature_select_strategy="default", projector_hidden_act="gelu")
            model = LlavaForConditionalGeneration(c).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn_like(p) * (0.1 if p.dim() == 1 else p.shape[-1] ** -0.5) + (1.0 if p.dim() == 1 and p.shape[0] in (16, 32) else 0.0))
            model.save_pretrained(sys.argv[1])
            ids = torch.tensor([[2, 7, 9] + [image] * 16 + [11, 13, 3]])
            pixels = torch.randn(1, 3, 48, 48)
            with torch.no_grad():
                logits = model(input_ids=ids, pixel_values=pixels).logits
            st.save_weights({"logits": logits, "pixel_values": pixels, "input_ids": ids.float()}, sys.argv[4])
            """
        _ = try Self.python(code, [dir + "/hf", String(vocab), String(SyntheticVocabulary.image), dir + "/ref.h5"])
        let imported = try ImportedModel(directory: dir + "/hf")
        #expect(imported.architecture == .llava)
        let model = try #require(imported.module as? MultimodalModel)
        let ref = try WeightsFile.open(dir + "/ref.h5")
        let ids = try ref.readTensor("input_ids").scalars.map { Int($0) }
        let n = ids.count
        let batch = try PackedBatch(
            tokens: IndexTensor(shape: [1, n], values: ids),
            labels: IndexTensor(shape: [1, n], values: Array(repeating: -100, count: n)),
            documentIds: IndexTensor(shape: [1, n], values: Array(repeating: 0, count: n)),
            positionIds: IndexTensor(shape: [1, n], values: Array(0..<n)),
            placeholders: [ImagePlaceholder(row: 0, start: 3, length: 16, crops: 1)],
            images: try ref.readTensor("pixel_values"))
        Self.expectClose(try model.logits(batch), try ref.readTensor("logits"), 1e-4, "imported Llava logits")
        // The stage folder a fine-tuning run starts from.
        let run = dir + "/run"
        try imported.write(to: run + "/pretrain", dtype: .float32, sourceDirectory: dir + "/hf")
        let config = try TrainingConfig.defaults.applying(overrides: [
            "run.output=\(run)", "metrics.progress=off", "data.synthetic.image_size=48",
            "data.synthetic.patch_size=4", "model.vision.image_size=48", "model.vision.patch_size=12",
            "model.vision.hidden_size=16", "pretrain.optimization.steps=1", "pretrain.optimization.global_batch=2",
            "pretrain.optimization.micro_batch=2", "finetune.optimization.steps=2",
            "finetune.optimization.global_batch=2", "finetune.optimization.micro_batch=2",
            "finetune.optimization.warmup_steps=0", "finetune.lora.dropout=0",
            "finetune.cadence.checkpoint_every=2",
        ])
        let report = try FinetuneStage.run(config: config, output: run)
        #expect(report.steps == 2)
        #expect(report.losses.count == 2 && report.losses.allSatisfy { $0[1].isFinite })
        // It started from the imported weights: the tower (frozen in fine-tuning) is unchanged.
        let tuned = try CLIPVisionModel.fromPretrained(directory: run + "/finetune/vision").model
        for (name, t) in model.visionTower.stateDict() {
            #expect(tuned.tensorSlot(named: name)?.value.scalars == t.scalars, "\(name)")
        }
        // The trainer's own checkpoint (LoRA attached, documents written by the loop) exports to the
        // model the stage saved with its adapters merged.
        let checkpoint = try CheckpointModel(checkpoint: run + "/finetune")
        #expect(checkpoint.step == 2 && checkpoint.lora?.r == config.finetune.lora.r)
        #expect(checkpoint.lora?.modulesToSave == ["multi_modal_projector"])
        try ModelExport.export(checkpoint, to: run + "/finetuned.h5", mergeLoRA: true)
        let exported = try WeightsFile.open(run + "/finetuned.h5")
        let saved = try StageModels.load(directory: run + "/finetune")
        #expect(exported.tensorNames == saved.stateDict().map(\.0))
        for (name, t) in saved.stateDict() {
            let e = relativeError(try exported.readTensor(name).scalars, t.scalars)
            #expect(e <= 1e-6, "\(name): exported vs the stage's merged model \(e)")
        }
    }

    // MARK: Chain-of-Sight authors' layout

    @Test func cosLlavaExportReimportsEqual() throws {
        let dir = try temporaryDirectory("cos-llava")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try Self.model(Self.chainOfSight)
        try ModelExport.export(model, lora: nil, to: dir + "/cos", layout: .cosLlava)
        let file = try SafetensorsFile(path: dir + "/cos/model.safetensors")
        let names = Set(file.tensorNames)
        #expect(names.contains("model.mm_projector.cls_token_w4_q2"))
        #expect(names.contains("model.mm_projector.attn_0_w2_l2_q4.to_kv.weight"))  // level 3 is the authors' l2
        #expect(names.contains("model.layers.0.self_attn.q_proj.weight") && names.contains("lm_head.weight"))
        #expect(names.contains("model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"))
        // The authors' projector loader reads the projector as it is.
        let projector = try ChainOfSightProjectorFile.load(file, headDim: 8)
        #expect(projector.config.featureLevels == [2, 3])
        for (name, t) in model.connector.stateDict() {
            #expect(projector.tensorSlot(named: name)?.value.scalars == t.scalars, "\(name)")
        }
        let imported = try ImportedModel(directory: dir + "/cos")
        #expect(imported.architecture == .cosLlava)
        let back = try #require(imported.module as? MultimodalModel)
        #expect(back.config.connector == model.config.connector)
        // Equal as written and read back (the decoder's head_dim is written out explicitly).
        let written = try JSONDecoder().decode(WholeModelConfig.self, from: Data(model.wholeModelConfig.jsonText().utf8))
        #expect(back.wholeModelConfig == written)
        #expect(back.stateDict().map(\.0) == model.stateDict().map(\.0))
        for (name, t) in model.stateDict() {
            #expect(back.tensorSlot(named: name)?.value.scalars == t.scalars, "\(name)")
        }
        let (batch, _) = try Self.batch(model)
        #expect(try back.logits(batch).scalars == model.logits(batch).scalars)
        #expect(throws: TrainingError.self) {
            try ModelExport.export(try Self.model(Self.projection(depth: 2)), lora: nil, to: dir + "/x", layout: .cosLlava)
        }
        #expect(throws: TrainingError.self) {
            try ModelExport.export(model, lora: nil, to: dir + "/y", layout: .hfLlava)
        }
    }

    // MARK: Checkpoints, LoRA

    /// A finetune-like checkpoint: the model with decoder adapters (B random, so they matter), written
    /// as the Trainer writes it, with the documents that describe it.
    static func loraCheckpoint(in dir: String) throws -> (MultimodalModel, LoRAConfig) {
        let model = try Self.model(Self.chainOfSight)
        try model.languageModel.attachLoRA(LoRAConfig(r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ["q_proj", "v_proj"]), seed: 3)
        randomizeParameters(model, seed: 21)
        model.eval()
        let lora = try #require(try model.attachedLoRAConfig())
        var trainer = TrainerState(globalStep: 7)
        try trainer.documents.set(model.config, for: ModelDocuments.modelConfig)
        try trainer.documents.set(lora, for: ModelDocuments.lora)
        let checkpoints = try CheckpointDirectory(dir + "/finetune/adapter/checkpoints")
        try checkpoints.save(TrainingCheckpoint(model: NamedTensors(model.stateDict()), trainer: trainer), step: 7)
        return (model, lora)
    }

    @Test func mergeLoRAExportEqualsTheUnmergedModel() throws {
        let dir = try temporaryDirectory("merge-lora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, lora) = try Self.loraCheckpoint(in: dir)
        #expect(lora.targetModules.count == 4 && lora.scale == 2 && lora.modulesToSave == ["multi_modal_projector"])
        let (batch, _) = try Self.batch(model)
        let unmerged = try model.logits(batch)
        // Every accepted spelling of the checkpoint: stage folder, `latest`, the file.
        for path in [dir + "/finetune", dir + "/finetune/adapter/checkpoints/latest"] {
            let source = try CheckpointModel(checkpoint: path)
            #expect(source.step == 7 && source.path.hasSuffix("checkpoint-000000007.h5"))
            #expect(source.lora?.r == 4)
        }
        let source = try CheckpointModel(checkpoint: dir + "/finetune")
        let summary = try ModelExport.export(source, to: dir + "/merged.h5", mergeLoRA: true)
        #expect(summary.mergedLoRA && summary.adapterDirectory == nil)
        let plain = try MultimodalModel(config: model.config)
        try WeightsFile.load(into: plain, from: dir + "/merged.h5")
        plain.eval()
        #expect(plain.loraModules.isEmpty)
        Self.expectClose(try plain.logits(batch), unmerged, 1e-5, "merged vs unmerged")
        // Without the adapters the logits differ: the merge carried them.
        let base = try MultimodalModel(config: model.config)
        _ = try WeightLoader.load(InMemoryTensors(NamedTensors(ModelExport.baseStateDict(model))), into: base)
        base.eval()
        #expect(relativeError(try base.logits(batch).scalars, unmerged.scalars) > 1e-3)
        // Directory layouts need the merge.
        #expect(throws: TrainingError.self) {
            try ModelExport.export(source, to: dir + "/cos", layout: .cosLlava)
        }
    }

    @Test(Python.requires("torch", "h5py", "transformers", "peft", "safetensors"))
    func peftAdapterExportLoadsWithPeftModel() throws {
        let dir = try temporaryDirectory("peft")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, _) = try Self.loraCheckpoint(in: dir)
        let (batch, ids) = try Self.batch(model)
        let ours = try model.logits(batch)
        let textIds = try IndexTensor(shape: [1, 6], values: [1, 5, 7, 9, 11, 3])
        let oursText = try model.languageModel(textIds)
        let summary = try ModelExport.export(try CheckpointModel(checkpoint: dir + "/finetune"), to: dir + "/model.h5")
        let adapter = try #require(summary.adapterDirectory)
        #expect(adapter == dir + "/model.adapter")
        try Self.writeInputs(batch, ids: ids, to: dir + "/inputs.h5")
        let code = """
            import json, sys, torch, sightline_torch as st
            from peft import PeftModel
            from transformers import LlamaConfig, LlamaForCausalLM
            h5, adapter, inputs, out = sys.argv[1:5]
            x = st.load_weights(inputs)
            base = st.SightlineMultimodalModel.from_file(h5)
            whole = PeftModel.from_pretrained(base, adapter).eval()
            cfg = json.load(open(adapter + "/adapter_config.json"))
            state = st.load_weights(h5)
            llama = LlamaForCausalLM(LlamaConfig(**st.config(h5)["text_config"]))
            llama.load_state_dict({k[len("language_model."):]: v for k, v in state.items()
                                   if k.startswith("language_model.")}, strict=True)
            decoder = PeftModel.from_pretrained(llama, adapter + "/language_model").eval()
            dcfg = json.load(open(adapter + "/language_model/adapter_config.json"))
            with torch.no_grad():
                logits = whole(x["pixel_values"], x["input_ids"].long())
                text = decoder(input_ids=torch.tensor([[1, 5, 7, 9, 11, 3]])).logits
            st.save_weights({"logits": logits, "text": text}, out)
            print(json.dumps({"modules_to_save": cfg["modules_to_save"], "decoder_targets": dcfg["target_modules"],
                              "lora_layers": sum(1 for n, _ in decoder.named_modules() if n.endswith("lora_A"))}))
            """
        let out = try Self.python(code, [dir + "/model.h5", adapter, dir + "/inputs.h5", dir + "/torch.h5"])
        let line = try #require(out.split(separator: "\n").last { $0.hasPrefix("{") })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(report["modules_to_save"] as? [String] == ["multi_modal_projector"])
        #expect(report["decoder_targets"] as? [String] == ["q_proj", "v_proj"])
        #expect(report["lora_layers"] as? Int == 4)
        let torch = try WeightsFile.open(dir + "/torch.h5")
        Self.expectClose(ours, try torch.readTensor("logits"), 1e-4, "whole model + PEFT adapter")
        Self.expectClose(oursText, try torch.readTensor("text"), 1e-4, "HF decoder + PEFT adapter")
    }

    // MARK: The command line

    @Test func weightsExportAndInspectOnTheCommandLine() throws {
        let exe = try #require(builtExecutable("weights", override: "SIGHTLINE_WEIGHTS_BIN"), "no weights executable")
        let dir = try temporaryDirectory("weights-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, _) = try Self.loraCheckpoint(in: dir)
        let export = try runProcess(
            exe, ["export", dir + "/finetune", dir + "/model.h5", "--merge-lora", "--dtype", "bfloat16"])
        #expect(export.status == 0, "\(export.output)")
        #expect(export.stdout.contains("step 7") && export.stdout.contains("LoRA merged"), "\(export.stdout)")
        let inspect = try runProcess(exe, ["inspect", dir + "/model.h5", "--summary"])
        #expect(inspect.status == 0, "\(inspect.output)")
        let text = inspect.stdout
        #expect(text.contains("connector chain_of_sight (6 tokens per image"), "\(text)")
        let connector = model.connector.parameterCount()
        #expect(text.contains("multi_modal_projector: \(model.connector.stateDict().count) tensors, \(connector) parameters (bfloat16 \(connector))"), "\(text)")
        #expect(text.contains("language_model:") && text.contains("vision_tower:"), "\(text)")
        // A layout the connector has no form in is an error that says why.
        let refused = try runProcess(exe, ["export", dir + "/finetune", dir + "/llava", "--layout", "hf-llava", "--merge-lora"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("chain_of_sight") && refused.output.contains("hf-llava"), "\(refused.output)")
    }
}
