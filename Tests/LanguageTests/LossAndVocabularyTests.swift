import Foundation
import Language
import SightlineTestSupport
import Tensor
import Testing

@Suite struct LossAndVocabularyTests {
    @Test func targetsShiftWithinDocumentsAndSkipIgnored() throws {
        let labels = try IndexTensor(shape: [1, 6], values: [5, 6, -100, 8, 9, 10])
        let docs = try IndexTensor(shape: [1, 6], values: [0, 0, 0, 1, 1, 1])
        let t = try nextTokenTargets(labels: labels, documentIds: docs)
        #expect(t.values == [6, -100, -100, 9, 10, -100])
        #expect(try positionIds(documentIds: docs).values == [0, 1, 2, 0, 1, 2])
    }

    @Test func microBatchSumsAverageExactlyOverAllTokens() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_causal", group: "language")
        let ids = try f.indexTensor("input_ids"), labels = try f.indexTensor("labels")
        let full = try model.nextTokenLoss(
            hidden: model.hiddenStates(DecoderInput(tokens: ids)), labels: labels)
        var sum: Float = 0, count = 0
        for r in 0..<2 {
            let row = try IndexTensor(shape: [1, 12], values: Array(ids.values[(r * 12)..<((r + 1) * 12)]))
            let lab = try IndexTensor(
                shape: [1, 12], values: Array(labels.values[(r * 12)..<((r + 1) * 12)]))
            let part = try model.nextTokenLoss(
                hidden: model.hiddenStates(DecoderInput(tokens: row)), labels: lab)
            sum += try part.lossSum.item()
            count += part.count
        }
        #expect(count == full.count)
        let err =
            abs(Double(sum / Float(count)) - Double(try full.meanLoss.item()))
            / Double(try full.meanLoss.item())
        #expect(err < 1e-6, "micro-batch average differs by \(err)")
        #expect(abs(try full.total(over: count).item() - sum / Float(count)) < 1e-5)
    }

    @Test func zeroSupervisedTokensGiveZeroLossAndZeroGradient() throws {
        let model = try loadFixtureModel("llama_tied")
        let ids = try IndexTensor(shape: [1, 4], values: [1, 2, 3, 4])
        let none = try IndexTensor(shape: [1, 4], values: [-100, -100, -100, -100])
        let params = model.namedParameters()
        var count = -1
        let (value, grads) = try valueAndGradient(at: params) {
            let l = try model.nextTokenLoss(
                hidden: model.hiddenStates(DecoderInput(tokens: ids)), labels: none, zLossCoefficient: 1e-4)
            count = l.count
            return try l.meanLoss + l.meanZLoss
        }
        #expect(count == 0)
        #expect(try value.item() == 0)
        for (name, _) in params {
            if let g = grads[name] {
                #expect(g.scalars.allSatisfy { $0 == 0 }, "\(name) got a nonzero gradient")
            }
        }
    }

    @Test func zLossIsCoefficientTimesSquaredLogSumExp() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_causal", group: "language")
        let ids = try f.indexTensor("input_ids"), labels = try f.indexTensor("labels")
        let h = try model.hiddenStates(DecoderInput(tokens: ids))
        let l = try model.nextTokenLoss(hidden: h, labels: labels, zLossCoefficient: 1e-3)
        let targets = try nextTokenTargets(labels: labels)
        let lse = try model.logits(hidden: h).logSumExp(axes: [2]).scalars
        var expected = 0.0
        for (i, t) in targets.values.enumerated() where t != -100 {
            expected += 1e-3 * Double(lse[i]) * Double(lse[i])
        }
        let got = Double(try l.zLossSum.item())
        #expect(abs(got - expected) / expected < 1e-5, "z-loss \(got) vs \(expected)")
        // The cross-entropy part is unchanged by the coefficient.
        let plain = try model.nextTokenLoss(hidden: h, labels: labels)
        #expect(abs(try plain.lossSum.item() - l.lossSum.item()) < 1e-6 * abs(try plain.lossSum.item()))
    }

    /// The training step's loss: cross-entropy and z-loss (Optim's coefficient) from ONE fused kernel
    /// call over the logits, forward and backward; no second pass computes the z-loss.
    @Test func crossEntropyAndZLossTakeOneKernelCall() throws {
        let model = try loadFixtureModel("llama_tiny")
        let f = try loadFixtureCase("llama_tiny_causal", group: "language")
        let ids = try f.indexTensor("input_ids"), labels = try f.indexTensor("labels")
        let recorder = RecordingBackend(name: "recorder")
        let params = model.namedParameters()
        let (_, grads) = try withBackend(recorder) {
            try valueAndGradient(at: params) {
                let h = try model.hiddenStates(DecoderInput(tokens: ids))
                let l = try model.nextTokenLoss(hidden: h, labels: labels, zLossCoefficient: 1e-4)
                #expect(try l.zLossSum.item() > 0)
                return try l.total(over: l.count)
            }
        }
        #expect(grads.count > 0)
        let calls = recorder.calls
        #expect(calls.filter { $0 == "crossEntropyForward" }.count == 1, "\(calls.filter { $0.hasPrefix("crossEntropy") })")
        #expect(calls.filter { $0 == "crossEntropyBackward" }.count == 1)
    }

    @Test func resizeVocabularyUsesMeanRowsAndKeepsOldLogits() throws {
        let model = try loadFixtureModel("llama_tiny")
        let ids = try IndexTensor(shape: [1, 5], values: [3, 9, 27, 81, 4])
        let before = try model(ids)
        let oldEmbed = model.model.embedTokens.weight.data
        try model.resizeVocabulary(to: 98)
        #expect(model.config.vocabSize == 98)
        #expect(model.model.embedTokens.weight.shape == [98, 32] && model.lmHead!.weight.shape == [98, 32])
        let mean = try oldEmbed.mean(axis: 0).scalars
        let newRow = try model.model.embedTokens.weight.data.narrow(axis: 0, start: 97, length: 1).scalars
        #expect(relativeError(newRow, mean) < 1e-6)
        let after = try model(ids)
        #expect(after.shape == [1, 5, 98])
        #expect(relErr(try after.narrow(axis: 2, start: 0, length: 96), before) < 1e-6)
        // New token ids are usable.
        _ = try model(IndexTensor(shape: [1, 2], values: [96, 97]))
    }

    @Test func resizeKeepsTiedEmbeddingsTied() throws {
        let model = try loadFixtureModel("llama_tied")
        try model.resizeVocabulary(to: 70)
        #expect(model.lmHead == nil && model.outputWeight === model.model.embedTokens.weight)
        #expect(try model(IndexTensor(shape: [1, 3], values: [1, 65, 69])).shape == [1, 3, 70])
        #expect(
            model.namedParameters().filter { $0.0.contains("embed") || $0.0.contains("lm_head") }.map(\.0)
                == ["model.embed_tokens.weight"])
    }
}
