import Foundation
import Testing
import Vision

@Test func decodesHFVisionConfigAndFillsDefaults() throws {
    let json =
        #"{"image_size": 224, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12,"#
        + #" "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "quick_gelu"}"#
    let config = try JSONDecoder().decode(CLIPVisionConfig.self, from: Data(json.utf8))
    #expect(config.gridSize == 14)
    #expect(config.hiddenSize == 768)
    #expect(config.layerNormEps == 1e-5)  // absent: HF's default
    let again = try JSONDecoder().decode(CLIPVisionConfig.self, from: JSONEncoder().encode(config))
    #expect(again == config)
}

@Test func loadsFullCLIPConfigsAndRejectsBadOnes() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vision-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    func write(_ name: String, _ json: String) throws -> String {
        let p = dir.appendingPathComponent(name).path
        try Data(json.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }
    // A full CLIP config: the vision_config object is used.
    let full = try write(
        "clip.json",
        #"{"model_type": "clip", "projection_dim": 768, "text_config": {"hidden_size": 512},"#
            + #" "vision_config": {"image_size": 336, "patch_size": 14, "hidden_size": 1024, "num_hidden_layers": 24,"#
            + #" "num_attention_heads": 16, "intermediate_size": 4096}}"#)
    let c = try CLIPVisionConfig.load(contentsOf: full)
    #expect(c.gridSize == 24 && c.numPositions == 577 && c.numHiddenLayers == 24)
    let bad = try write("bad.json", #"{"hidden_size": 30, "num_attention_heads": 4}"#)
    #expect { try CLIPVisionConfig.load(contentsOf: bad) } throws: { ($0 as? VisionError)?.source == bad }
    let act = try write("act.json", #"{"hidden_act": "mish"}"#)
    #expect { try CLIPVisionConfig.load(contentsOf: act) } throws: { "\($0)".contains("mish") }
    let garbage = try write("garbage.json", "not json")
    #expect { try CLIPVisionConfig.load(contentsOf: garbage) } throws: {
        ($0 as? VisionError)?.source == garbage
    }
    #expect(throws: VisionError.self) {
        try CLIPVisionModel(config: CLIPVisionConfig(hiddenSize: 30, numAttentionHeads: 4))
    }
}
