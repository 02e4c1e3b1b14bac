import Foundation
import Language
import Testing

@Test func decodesGroupedQueryConfig() throws {
    let json =
        #"{"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,"#
        + #" "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8}"#
    let c = try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8))
    #expect(c.headDim == 128)
    #expect(c.numKeyValueHeads == 8)
    #expect(c.tieWordEmbeddings == false)
    let mha = try JSONDecoder().decode(
        LlamaConfig.self,
        from: Data(json.replacingOccurrences(of: #", "num_key_value_heads": 8"#, with: "").utf8))
    #expect(mha.numKeyValueHeads == 32)  // absent: one KV head per query head
}
