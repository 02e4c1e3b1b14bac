import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing
import Vision

// Parity with HF transformers' CLIPVisionModel on the committed fixture (a random 3-layer tower,
// hidden 32, patch 4, image 32): hidden states of every layer, the pooled output, and gradients of
// sum(last_hidden_state * r_last) + sum(pooler_output * r_pooled) with respect to every parameter.

@Suite struct CLIPParityTests {
    @Test func parameterNamesAndShapesMatchHFCheckpointKeys() throws {
        let fixture = try loadFixtureCase("clip_tiny", group: "vision")
        guard case .object(let saved) = try fixture.param("saved_keys") else {
            throw FixtureError("saved_keys")
        }
        let model = try VisionFixtures.clipModel()
        // Unprefixed names (transformers 5 save_pretrained) are the transformer's own names.
        let ours = Dictionary(
            uniqueKeysWithValues: model.visionModel.namedParameters().map { ($0.0, $0.1.shape) })
        #expect(Set(ours.keys) == Set(saved.keys))
        for (name, shape) in saved {
            guard case .array(let dims) = shape else { continue }
            #expect(ours[name] == dims.compactMap(\.intValue), "\(name)")
        }
        // The full model adds HF's vision_model. prefix.
        #expect(model.namedParameters().allSatisfy { $0.0.hasPrefix("vision_model.") })
        #expect(model.namedParameters().count == saved.count)
        #expect(model.namedParameters().contains { $0.0 == "vision_model.pre_layrnorm.weight" })
    }

    func checkHiddenStates(tag: String) throws {
        let model = try VisionFixtures.clipModel()
        let ref = try VisionFixtures.safetensors("clip_tiny_reference.safetensors")
        let pixels = try ref.readTensor("\(tag).pixel_values")
        let n = model.layerCount
        let out = try model.forward(pixels, hiddenStates: Array(0...n), pooled: true)
        for i in 0...n {
            let expected = try ref.readTensor("\(tag).hidden_states.\(i)")
            let got = try #require(out.hiddenStates[i])
            let err = relError(got, expected)
            #expect(err <= 1e-4, "\(tag) hidden state \(i): relative error \(err)")
        }
        let pooledErr = relError(try #require(out.pooled), try ref.readTensor("\(tag).pooler_output"))
        #expect(pooledErr <= 1e-4, "\(tag) pooled: relative error \(pooledErr)")
    }

    @Test func hiddenStatesMatchHFAtNativeSize() throws { try checkHiddenStates(tag: "native") }

    @Test func hiddenStatesMatchHFAtInterpolatedNonSquareSize() throws {
        try checkHiddenStates(tag: "interp")
        let model = try VisionFixtures.clipModel()
        let pixels = try VisionFixtures.safetensors("clip_tiny_reference.safetensors").readTensor(
            "interp.pixel_values")
        let f = try model.features(pixels)
        #expect(f.grid.height == 10 && f.grid.width == 6)
        #expect(f.levels[0].shape == [2, 60, 32])
    }

    @Test func gradientsMatchHFForEveryParameter() throws {
        let model = try VisionFixtures.clipModel()
        let ref = try VisionFixtures.safetensors("clip_tiny_reference.safetensors")
        let pixels = try ref.readTensor("interp.pixel_values")
        let rLast = try ref.readTensor("interp.r_last")
        let rPooled = try ref.readTensor("interp.r_pooled")
        let params = model.visionModel.namedParameters()
        let (_, grads) = try valueAndGradient(at: params) {
            let o = try model(pixels)
            return try (o.hiddenStates[model.layerCount]! * rLast).sum() + (o.pooled! * rPooled).sum()
        }
        #expect(grads.count == params.count)
        // The reference's gradients are exactly the parameters' (none left unchecked).
        let stored = Set(ref.tensorInfos.map(\.name).filter { $0.hasPrefix("interp.grad.") })
        #expect(stored == Set(params.map { "interp.grad." + $0.0 }), "\(stored.count) stored vs \(params.count)")
        // The scale of the gradients overall, for the parameters whose exact gradient is zero.
        var scale = 0.0
        for (name, _) in params {
            scale = max(scale, Double(try ref.readTensor("interp.grad.\(name)").abs().max().item()))
        }
        for (name, _) in params {
            let expected = try ref.readTensor("interp.grad.\(name)")
            let got = try #require(grads[name], "no gradient for \(name)")
            if name.hasSuffix("self_attn.k_proj.bias") {
                // Softmax is invariant to a shift shared by all keys: the exact gradient is 0 (HF's float64
                // value is rounding noise), so only its smallness relative to the other gradients is checked.
                let m = Double(try got.abs().max().item())
                #expect(m <= 1e-5 * scale, "\(name): |grad| \(m) should be ~0 (scale \(scale))")
                continue
            }
            let err = relError(got, expected)
            #expect(err <= 1e-3, "\(name): gradient relative error \(err)")
        }
    }

    @Test func featuresDefaultToPenultimatePatchesAndStopEarly() throws {
        let model = try VisionFixtures.clipModel()
        let ref = try VisionFixtures.safetensors("clip_tiny_reference.safetensors")
        let pixels = try ref.readTensor("native.pixel_values")
        let f = try model.features(pixels)
        #expect(f.layers == [2])
        #expect(f.grid.height == 8 && f.grid.width == 8)
        let penultimate = try ref.readTensor("native.hidden_states.2")
        let expected = try penultimate.narrow(axis: 1, start: 1, length: 64)
        #expect(f.levels[0].shape == [2, 64, 32])
        #expect(relError(f.levels[0], expected) <= 1e-4)
        // Layers after the deepest requested one do not run.
        #expect(try model.forward(pixels, hiddenStates: [1]).layersRun == 1)
        #expect(try model.forward(pixels, hiddenStates: [-2]).layersRun == 2)
        #expect(try model.forward(pixels, hiddenStates: [0]).layersRun == 0)
        #expect(try model.forward(pixels, hiddenStates: [1], pooled: true).layersRun == 3)
        // Two levels (as Chain-of-Sight reads), class token kept on request.
        model.keepClassToken = true
        let two = try model.features(pixels, layers: [1, -1])
        #expect(two.layers == [1, 3])
        #expect(two.levels.map(\.shape) == [[2, 65, 32], [2, 65, 32]])
        #expect(relError(two.levels[1], try ref.readTensor("native.hidden_states.3")) <= 1e-4)
        #expect(throws: VisionError.self) { try model.features(pixels, layers: [4]) }
        #expect(throws: VisionError.self) { try model.features(pixels, layers: [-5]) }
    }

    @Test func frozenTowerRecordsNoGraph() throws {
        let model = try VisionFixtures.clipModel()
        let pixels = try VisionFixtures.safetensors("clip_tiny_reference.safetensors").readTensor(
            "native.pixel_values")
        let trainable = try model.features(pixels)
        #expect(trainable.levels[0].requiresGradient)
        model.isFrozen = true
        #expect(model.isFrozen)
        #expect(model.trainableParameters().isEmpty)
        let frozen = try model.features(pixels.requiringGradient())
        #expect(!frozen.levels[0].requiresGradient)
        #expect(relError(frozen.levels[0], trainable.levels[0]) == 0)
        model.isFrozen = false
        #expect(model.trainableParameters().count == model.namedParameters().count)
    }

    @Test func strictLoadReportsEveryProblem() throws {
        let model = try VisionFixtures.clipModel()
        var sd = NamedTensors(model.stateDict())
        // Both naming forms load; full-CLIP extras are skipped and position_ids is ignored.
        var bare = NamedTensors()
        for (k, v) in sd { bare[String(k.dropFirst("vision_model.".count))] = v }
        bare["embeddings.position_ids"] = Tensor.zeros([1, 65])
        bare["text_model.embeddings.token_embedding.weight"] = Tensor.zeros([4, 2])
        bare["logit_scale"] = Tensor(1)
        let report = try model.load(from: InMemoryTensors(bare))
        #expect(report.loaded.count == sd.count)
        #expect(report.renamed.count == sd.count)
        #expect(report.ignored == ["embeddings.position_ids"])
        #expect(report.skipped == ["text_model.embeddings.token_embedding.weight", "logit_scale"])
        sd["vision_model.post_layernorm.bias"] = nil
        sd["vision_model.extra.weight"] = Tensor.zeros([1])
        sd["vision_model.pre_layrnorm.weight"] = Tensor.zeros([31])
        let before = model.stateDict().map { $0.1.scalars }
        do {
            try model.load(from: InMemoryTensors(sd, path: "bad.safetensors"))
            Issue.record("a broken state dict loaded")
        } catch let e as LoadError {
            #expect(e.report.file == "bad.safetensors")
            #expect(e.report.missing == ["vision_model.post_layernorm.bias"])
            #expect(e.report.unexpected == ["vision_model.extra.weight"])
            #expect(
                e.report.shapeMismatches == [
                    .init(name: "vision_model.pre_layrnorm.weight", expected: [32], found: [31])
                ])
            #expect("\(e)".contains("bad.safetensors") && "\(e)".contains("expected [32], file has [31]"))
        }
        #expect(model.stateDict().map { $0.1.scalars } == before, "a failed strict load changed the model")
    }
}
