import Datasets
import Language
import SightlineTestSupport
import Tensor
import Testing

/// The batch contract end to end: synthetic-world samples packed into a `PackedBatch` drive a Llama
/// decoder forward and its next-token loss (positions restart per document, attention never crosses a
/// document, no loss on image placeholders or padding).
@Test func packedBatchDrivesALanguageForwardPass() throws {
    let w = try SyntheticWorld(seed: 4)
    let builder = DocumentBuilder(
        encode: worldEncoder(), bos: nil, eos: 3, imageMarker: -1,
        preprocessor: { img in try PreparedImage(pixels: img.reshaped([1, 3, 224, 224])) })
    let config = PackingConfig(sequenceLength: 96, maxImages: 16, imageTokenId: 1, padTokenId: 0) { img in
        4 * img.cropCount
    }
    var packer = try SequencePacker(config: config)
    var rows: [PackedSequence] = []
    var i = 0
    while rows.count < 2 {
        if let r = packer.nextSequence() {
            rows.append(r)
            continue
        }
        try packer.push(try builder.build(i % 2 == 0 ? w.captionSample(i) : w.textSample(i)))
        i += 1
    }
    let batch = try PackedBatch(rows: rows)
    #expect(batch.shape.batch == 2 && batch.shape.length == 96)
    let model = try LlamaForCausalLM(
        config: LlamaConfig(
            vocabSize: 512, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
            numKeyValueHeads: 2),
        seed: 1)
    let input = DecoderInput(
        tokens: batch.tokens, positionIds: batch.positionIds, documentIds: batch.documentIds,
        keyPadding: batch.keyPadding)
    let (value, grads) = try valueAndGradient(at: model.namedParameters()) {
        let hidden = try model.hiddenStates(input)
        #expect(hidden.shape == [2, 96, 32])
        let loss = try model.nextTokenLoss(
            hidden: hidden, labels: batch.labels, documentIds: batch.documentIds)
        #expect(loss.count > 0)
        // Image placeholders and padding carry no label.
        for (t, l) in zip(batch.tokens.values, batch.labels.values) where t == 1 || t == 0 {
            #expect(l == -100)
        }
        return loss.lossSum / Float(loss.count)
    }
    let v = try value.item()
    #expect(v.isFinite && v > 0)
    #expect(grads["model.embed_tokens.weight"] != nil)
}
