import Foundation
import Testing
import Training

@Test func stagesRunInOrderAndRoundTrip() throws {
    #expect(Stage.clip.next == .pretrain)
    #expect(Stage.pretrain.next == .scaleTokens)
    #expect(Stage.scaleTokens.next == .finetune)
    #expect(Stage.finetune.next == nil)
    let data = try JSONEncoder().encode([Stage.scaleTokens])
    #expect(String(decoding: data, as: UTF8.self) == #"["scale-tokens"]"#)
}
