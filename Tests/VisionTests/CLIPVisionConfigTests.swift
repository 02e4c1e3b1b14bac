import Foundation
import Testing
import Vision

@Test func decodesHFVisionConfigAndFillsDefaults() throws {
    let json = #"{"image_size": 224, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12,"#
        + #" "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "quick_gelu"}"#
    let config = try JSONDecoder().decode(CLIPVisionConfig.self, from: Data(json.utf8))
    #expect(config.gridSize == 14)
    #expect(config.hiddenSize == 768)
    #expect(config.layerNormEps == 1e-5)  // absent: HF's default
    let again = try JSONDecoder().decode(CLIPVisionConfig.self, from: JSONEncoder().encode(config))
    #expect(again == config)
}
