import Checkpoint
import Foundation
import Tensor
import TensorFiles
import Testing

@Suite struct CheckpointLoadReportTests {
    /// A CLIP-like file: a vision tower, a derived buffer and (prefixed) a text tower.
    func clipFile(_ dir: TempDir, prefixed: Bool = true, dtype: WeightDType = .float32) throws -> TensorSource
    {
        let p = prefixed ? "vision_model." : ""
        var tensors: NamedTensors = [
            p + "embeddings.patch_embedding.weight": Tensor.full([4, 3, 2, 2], 0.5),
            p + "embeddings.position_ids": try Tensor.arange(0, 5).reshaped([1, 5]),
            p + "encoder.layers.0.mlp.fc1.weight": Tensor.full([6, 4], 0.25),
            p + "encoder.layers.0.mlp.fc1.bias": Tensor.full([6], -1),
        ]
        // A whole CLIP model has a text tower; a vision tower saved by transformers 5 has no prefix
        // and no text tower.
        if prefixed { tensors["text_model.embeddings.token_embedding.weight"] = Tensor.full([10, 4], 2) }
        let path = dir.file(prefixed ? "clip.safetensors" : "clip-unprefixed.safetensors")
        try SafetensorsFile.write(tensors, to: path, dtype: dtype)
        return try SafetensorsFile(path: path)
    }

    let vision: [ExpectedTensor] = [
        ExpectedTensor("vision_model.embeddings.patch_embedding.weight", shape: [4, 3, 2, 2]),
        ExpectedTensor("vision_model.encoder.layers.0.mlp.fc1.weight", shape: [6, 4]),
        ExpectedTensor("vision_model.encoder.layers.0.mlp.fc1.bias", shape: [6]),
    ]

    @Test func strictLoadListsEveryProblemAtOnce() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let source = try clipFile(dir)
        let expected = [
            ExpectedTensor("vision_model.embeddings.patch_embedding.weight", shape: [4, 3, 2, 2]),
            ExpectedTensor("vision_model.encoder.layers.0.mlp.fc1.weight", shape: [4, 6]),  // transposed
            ExpectedTensor("vision_model.post_layernorm.weight", shape: [4]),  // not in the file
        ]
        do {
            _ = try WeightLoader.load(from: source, expected: expected)
            Issue.record("expected a LoadError")
        } catch let e as LoadError {
            let r = e.report
            #expect(r.missing == ["vision_model.post_layernorm.weight"])
            #expect(
                Set(r.unexpected) == [
                    "vision_model.encoder.layers.0.mlp.fc1.bias",
                    "text_model.embeddings.token_embedding.weight",
                ])
            #expect(
                r.shapeMismatches == [
                    .init(
                        name: "vision_model.encoder.layers.0.mlp.fc1.weight", expected: [4, 6], found: [6, 4])
                ])
            #expect(r.ignored == ["vision_model.embeddings.position_ids"])
            #expect(!r.isClean)
            let text = "\(e)"
            for needle in [
                "missing: vision_model.post_layernorm.weight", "unexpected: text_model.",
                "expected [4, 6], file has [6, 4]", source.path,
            ] {
                #expect(text.contains(needle), "\(needle) not in \(text)")
            }
        }
    }

    @Test func nonStrictLoadsWhatMatches() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let source = try clipFile(dir, dtype: .float16)
        let expected = vision + [ExpectedTensor("vision_model.extra", shape: [1])]
        let (tensors, report) = try WeightLoader.load(
            from: source, expected: expected, options: LoadOptions(strict: false))
        #expect(tensors.names == vision.map(\.name))
        #expect(
            tensors["vision_model.encoder.layers.0.mlp.fc1.bias"]?.scalars == Array(repeating: -1, count: 6))
        #expect(report.missing == ["vision_model.extra"])
        #expect(report.unexpected == ["text_model.embeddings.token_embedding.weight"])
        #expect(report.conversions.map(\.name) == vision.map(\.name))
        #expect(report.conversions.allSatisfy { $0.from == .float16 })
    }

    @Test func prefixLoadsOnlyTheVisionTower() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let source = try clipFile(dir)
        // The whole model also has a language model; only the vision part is loaded from CLIP.
        let whole = vision + [ExpectedTensor("language_model.lm_head.weight", shape: [10, 4])]
        let (tensors, report) = try WeightLoader.load(
            from: source, expected: whole, options: LoadOptions(prefix: "vision_model."))
        #expect(report.isClean, "\(report)")
        #expect(tensors.names == vision.map(\.name))
        #expect(report.skipped == ["text_model.embeddings.token_embedding.weight"])
    }

    @Test func acceptsClipKeysWithAndWithoutTheVisionPrefix() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        // transformers 5 writes the vision tower without `vision_model.`.
        let unprefixed = try clipFile(dir, prefixed: false)
        let (a, ra) = try WeightLoader.load(
            from: unprefixed, expected: vision,
            options: LoadOptions(prefix: "vision_model.", optionalPrefixes: ["vision_model."]))
        #expect(ra.isClean, "\(ra)")
        #expect(a.names == vision.map(\.name))
        #expect(
            ra.renamed.contains(
                .init(
                    fileKey: "encoder.layers.0.mlp.fc1.bias",
                    name: "vision_model.encoder.layers.0.mlp.fc1.bias")))
        // And a model whose names lack the prefix loads a prefixed file.
        let prefixed = try clipFile(dir)
        let bare = vision.map {
            ExpectedTensor(String($0.name.dropFirst("vision_model.".count)), shape: $0.shape)
        }
        let (b, rb) = try WeightLoader.load(
            from: prefixed, expected: bare, options: LoadOptions(strict: false, optionalPrefixes: ["vision_model."]))
        #expect(b.names == bare.map(\.name))
        #expect(rb.missing.isEmpty && rb.shapeMismatches.isEmpty)
        #expect(rb.unexpected == ["text_model.embeddings.token_embedding.weight"])
        expectIdentical(NamedTensors(b.names.map { ("vision_model." + $0, b[$0]!) }), a)
    }

    /// `keyPrefix` removes the prefix a file stores a model under and skips every other key;
    /// `skippedPrefixes` skips other parts of a checkpoint instead of calling them unexpected.
    @Test func keyPrefixAndSkippedPrefixes() throws {
        let w = try Tensor(shape: [2, 3], scalars: (0..<6).map(Float.init))
        let b = try Tensor(shape: [2], scalars: [7, 8])
        let expected = [ExpectedTensor("0.weight", shape: [2, 3]), ExpectedTensor("0.bias", shape: [2])]
        let file = InMemoryTensors(
            [
                "model.embed_tokens.weight": Tensor.zeros([4, 2]), "model.mm_projector.0.weight": w,
                "model.mm_projector.0.bias": b,
            ], path: "mm_projector.bin")
        let (t, r) = try WeightLoader.load(
            from: file, expected: expected, options: LoadOptions(keyPrefix: "model.mm_projector."))
        #expect(r.isClean && r.loaded == ["0.weight", "0.bias"], "\(r)")
        #expect(r.skipped == ["model.embed_tokens.weight"])
        #expect(r.renamed.map(\.fileKey) == ["model.mm_projector.0.weight", "model.mm_projector.0.bias"])
        #expect(t["0.weight"]!.scalars == w.scalars && t["0.bias"]!.scalars == b.scalars)
        // Without the prefix every key is unexpected, and a strict load names the file.
        do {
            _ = try WeightLoader.load(from: file, expected: expected)
            Issue.record("a prefixed file loaded without its prefix")
        } catch let e as LoadError {
            #expect(e.report.unexpected.count == 3 && e.report.missing == ["0.weight", "0.bias"])
            #expect("\(e)".contains("mm_projector.bin"))
        }
        // Skipped prefixes: another part of the checkpoint is reported as skipped.
        let (_, r2) = try WeightLoader.load(
            from: file, expected: [ExpectedTensor("model.mm_projector.0.weight", shape: [2, 3])],
            options: LoadOptions(strict: false, skippedPrefixes: ["model.embed_tokens."]))
        #expect(r2.skipped == ["model.embed_tokens.weight"] && r2.unexpected == ["model.mm_projector.0.bias"])
    }

    @Test func derivedBuffersAreNeverMissingOrLoaded() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("llama.safetensors")
        try SafetensorsFile.write(
            ["model.layers.0.self_attn.rotary_emb.inv_freq": Tensor([1, 2]), "w": Tensor([3])], to: path)
        let expected = [
            ExpectedTensor("w", shape: [1]), ExpectedTensor("model.embeddings.position_ids", shape: [1, 4]),
        ]
        let (t, r) = try WeightLoader.load(from: try SafetensorsFile(path: path), expected: expected)
        #expect(t.names == ["w"])
        #expect(r.isClean)
        #expect(r.ignored == ["model.layers.0.self_attn.rotary_emb.inv_freq"])
        #expect(LoadOptions.derivedBuffers == ["rotary_emb.inv_freq", "position_ids"])
        // With the ignore list emptied, the same file reports both.
        let strictAll = LoadOptions(strict: false, ignored: [])
        let (_, r2) = try WeightLoader.load(
            from: try SafetensorsFile(path: path), expected: expected, options: strictAll)
        #expect(r2.missing == ["model.embeddings.position_ids"])
        #expect(r2.unexpected == ["model.layers.0.self_attn.rotary_emb.inv_freq"])
    }
}
