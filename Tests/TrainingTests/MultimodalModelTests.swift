import Bridges
import Datasets
import Foundation
import Language
import TensorFiles
import SightlineTestSupport
import Testing
import Training
import TrainingTestSupport
import Vision

/// Reads Tests/Fixtures/training/multimodal.{json,safetensors} (scripts/make_training_fixtures.py).
struct MultimodalFixture {
    let meta: [String: Any]
    let tensors: SafetensorsFile

    init() throws {
        let dir = TinyRun.fixtures("training")
        meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("multimodal.json")))
            as! [String: Any]
        tensors = try SafetensorsFile(path: dir.appendingPathComponent("multimodal.safetensors").path)
    }

    func config() throws -> ModelConfig {
        var object: [String: Any] = [:]
        for key in ["vision", "connector", "language_model", "image_token_id"] { object[key] = meta[key] }
        object["vision_training"] = "trainable"
        return try JSONDecoder().decode(ModelConfig.self, from: JSONSerialization.data(withJSONObject: object))
    }

    func ints(_ key: String) throws -> IndexTensor {
        let rows = meta[key] as! [[Int]]
        return try IndexTensor(shape: [rows.count, rows[0].count], values: rows.flatMap { $0 })
    }

    func batch() throws -> PackedBatch {
        let placeholders = (meta["placeholders"] as! [[String: Int]]).map {
            ImagePlaceholder(row: $0["row"]!, start: $0["start"]!, length: $0["length"]!, crops: $0["crops"]!)
        }
        return try PackedBatch(
            tokens: ints("tokens"), labels: ints("labels"), documentIds: ints("document_ids"),
            positionIds: ints("position_ids"), placeholders: placeholders, images: tensors.readTensor("pixels"))
    }

    /// The model with the fixture's weights.
    func model(checkpointing: Bool = false) throws -> MultimodalModel {
        var c = try config()
        c.activationCheckpointing = ActivationCheckpointing(vision: checkpointing, languageModel: checkpointing)
        let m = try MultimodalModel(config: c)
        for (name, p) in m.namedParameters() {
            let t = try tensors.readTensor("param/" + name)
            #expect(t.shape == p.shape, "\(name)")
            p.data = t
        }
        #expect(m.namedParameters().count == tensors.tensorInfos.filter { $0.name.hasPrefix("param/") }.count)
        return m
    }
}

/// The multimodal model's loss and every gradient against HF CLIPVisionModel + an MLP projection +
/// HF LlamaForCausalLM (transformers, float64 reference) on a packed batch of 2 rows, 3 documents and
/// 3 images (one with 2 sub-image crops): within 1e-4 relative per tensor.
@Test func multimodalLossAndEveryGradientMatchPyTorch() throws {
    let f = try MultimodalFixture()
    let model = try f.model()
    let batch = try f.batch()
    let z = Float(f.meta["z_loss"] as! Double)
    var count = 0
    let (value, grads) = try valueAndGradient(at: model.namedParameters()) {
        let l = try model.loss(batch, zLossCoefficient: z)
        count = l.count
        return try l.total(over: l.count)
    }
    #expect(count == f.meta["count"] as! Int)
    let want = f.meta["loss"] as! Double
    let loss = Double(try value.item())
    #expect(abs(loss - want) / abs(want) <= 1e-4, "loss \(loss) vs \(want)")
    let noGradient = Set(f.meta["no_gradient"] as! [String])
    let scale = grads.map { $0.gradient.scalars.map { abs($0) }.max()! }.max()!
    var compared = 0
    for (name, _) in model.namedParameters() {
        if noGradient.contains(name) {
            // Layers after the connector's feature level do not run: no gradient at all.
            #expect(grads[name] == nil, "\(name) should not run")
            continue
        }
        let g = try #require(grads[name], "no gradient for \(name)")
        let ref = try f.tensors.readTensor("grad/" + name)
        #expect(g.shape == ref.shape, "\(name)")
        if isStructurallyZero(name) {
            // Zero in exact arithmetic (softmax cancels a key bias): both sides are rounding noise.
            #expect(ref.scalars.allSatisfy { abs($0) <= 1e-6 * scale }, "\(name) reference")
            #expect(g.scalars.allSatisfy { abs($0) <= 1e-6 * scale }, "\(name)")
            compared += 1
            continue
        }
        let err = relativeError(g.scalars, ref.scalars)
        #expect(err <= 1e-4, "\(name): relative error \(err)")
        compared += 1
    }
    #expect(compared == 46, "compared \(compared) gradients")
}

/// Per-layer recomputation in both towers gives the same loss and gradients, bit for bit.
@Test func activationCheckpointingLeavesGradientsIdentical() throws {
    let f = try MultimodalFixture()
    let batch = try f.batch()
    func run(_ checkpointing: Bool) throws -> (Float, Gradients) {
        let m = try f.model(checkpointing: checkpointing)
        #expect(m.visionTower.gradientCheckpointing == checkpointing)
        #expect(m.languageModel.gradientCheckpointing == checkpointing)
        let (v, g) = try valueAndGradient(at: m.namedParameters()) {
            let l = try m.loss(batch, zLossCoefficient: 1e-4)
            return try l.total(over: l.count)
        }
        return (try v.item(), g)
    }
    let (plainLoss, plain) = try run(false)
    let (recomputedLoss, recomputed) = try run(true)
    #expect(plainLoss == recomputedLoss)
    #expect(plain.names == recomputed.names)
    for (name, g) in plain {
        #expect(recomputed[name]?.scalars == g.scalars, "\(name) differs with checkpointing")
    }
}

/// Frozen tower: no tower gradient, the rest still trains; last-N: only those layers (and post_layernorm).
@Test func visionFreezingModes() throws {
    let f = try MultimodalFixture()
    var c = try f.config()
    c.visionTraining = .frozen
    let frozen = try MultimodalModel(config: c)
    #expect(frozen.visionTower.trainableParameters().isEmpty)
    #expect(frozen.connector.trainableParameters().count == 4)
    let (_, g) = try valueAndGradient(at: frozen.namedParameters()) {
        try frozen.loss(try f.batch()).lossSum
    }
    #expect(!g.names.contains { $0.hasPrefix(MultimodalModel.visionPrefix) })
    #expect(g["multi_modal_projector.0.weight"] != nil)

    c.visionTraining = .lastLayers
    c.visionTrainableLayers = 1
    let last = try MultimodalModel(config: c)
    let names = last.visionTower.trainableParameters(prefix: MultimodalModel.visionPrefix).map(\.0)
    #expect(names.allSatisfy { $0.contains("encoder.layers.1.") || $0.contains("post_layernorm") }, "\(names)")
    #expect(names.count == 18)
    c.visionTrainableLayers = 3
    #expect(throws: TrainingError.self) { try MultimodalModel(config: c) }
}

/// A placeholder run that does not match its crops x tokens is an error naming both counts.
@Test func mismatchedPlaceholderRunIsAnError() throws {
    let f = try MultimodalFixture()
    let model = try f.model()
    var batch = try f.batch()
    batch.placeholders[1].length = 7
    do {
        _ = try model.loss(batch)
        Issue.record("expected an error")
    } catch let e as TrainingError {
        #expect(e.description.contains("image 1") && e.description.contains("7") && e.description.contains("8"), "\(e)")
    }
}

/// The memory estimate counts parameters, trainable gradients and AdamW's two moments exactly.
@Test func memoryEstimateCountsStateExactly() throws {
    let model = try MultimodalModel(config: TinyRun.modelConfig(vision: .frozen))
    let e = model.memoryEstimate(microBatch: 2, sequenceLength: 48, imagesPerMicroBatch: 6)
    let all = model.parameterCount(), trainable = model.parameterCount(trainableOnly: true)
    #expect(trainable < all)
    #expect(e.parameterBytes == 4 * all && e.gradientBytes == 4 * trainable && e.optimizerStateBytes == 8 * trainable)
    #expect(e.activationBytesPerMicroBatch > 0)
    #expect(e.description.contains("parameters") && e.description.contains("per micro-batch"))
    let checkpointed = try MultimodalModel(config: TinyRun.modelConfig(vision: .frozen, checkpointing: true))
    let c = checkpointed.memoryEstimate(microBatch: 2, sequenceLength: 48, imagesPerMicroBatch: 6)
    #expect(c.activationBytesPerMicroBatch < e.activationBytesPerMicroBatch)
}
