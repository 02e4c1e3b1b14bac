import Foundation
import Language
import SightlineTestSupport
import Tensor
import Testing

// Inputs a user can get wrong throw an error that names the value instead of trapping.

@Suite struct LanguageUserInputErrors {
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test func labelsWithoutPositionsThrow() throws {
        let model = try LlamaForCausalLM(config: LlamaConfig(
            vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2))
        let empty = try IndexTensor(shape: [2, 0], values: [])
        let m = message { _ = try nextTokenTargets(labels: empty) }
        #expect(m.contains("[2, 0]") && m.contains("T = 0"), "\(m)")
        let hidden = Tensor.zeros([2, 0, 8])
        let viaLoss = message { _ = try model.nextTokenLoss(hidden: hidden, labels: empty) }
        #expect(viaLoss.contains("[2, 0]"), "\(viaLoss)")
    }

    @Test func cacheWithFewerLayersThanTheModelThrows() throws {
        let model = try loadFixtureModel("llama_tiny")  // 2 layers
        let ids = try IndexTensor(shape: [1, 3], values: [1, 2, 3])
        for layers in [1, 0, 3] {
            let m = message { _ = try model.hiddenStates(DecoderInput(tokens: ids), cache: KVCache(layers: layers)) }
            #expect(m.contains("KV cache has \(layers) layers, the model 2"), "\(m)")
        }
        let ok = KVCache(layers: 2)
        _ = try model.hiddenStates(DecoderInput(tokens: ids), cache: ok)
        #expect(ok.length == 3)
    }
}
