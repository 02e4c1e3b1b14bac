import Bridges
import Datasets
import Foundation
import Language
import Optim
import Tensor
import Training
import Vision

// A tiny multimodal run on the synthetic world (8x8 images, a 2-layer tower, a 2-layer decoder over the
// committed synthetic tokenizer), shared by the Training tests and the kill/resume probe.

private let supportPath: String = #filePath

public enum TinyRun {
    /// Tests/Fixtures/<group>.
    public static func fixtures(_ group: String) -> URL {
        URL(fileURLWithPath: supportPath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(group)
    }

    /// The committed byte-level BPE tokenizer of the synthetic world (vocabulary 449: `<pad>` 0,
    /// `<image>` 1, `<s>` 2, `</s>` 3).
    public static func tokenizer() throws -> Tokenizer {
        try Tokenizer(contentsOf: fixtures("datasets/synthetic").appendingPathComponent("tokenizer.json"))
    }

    /// Tokens per 8x8 crop: 2x2 patches, one token each (projection connector).
    public static let tokensPerCrop = 4

    /// Tower 8px/4px patches, hidden 16, 2 layers; 2-layer MLP projection from the penultimate layer;
    /// Llama hidden 32, 2 layers, 4 heads, 2 KV heads.
    public static func modelConfig(
        vision: VisionTraining = .trainable, checkpointing: Bool = false, seed: UInt64 = 3
    ) -> ModelConfig {
        ModelConfig(
            vision: CLIPVisionConfig(
                imageSize: 8, patchSize: 4, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                intermediateSize: 32),
            connector: .projection(ProjectionConfig(visionDim: 16, llmDim: 32, depth: 2, featureLevel: -2)),
            languageModel: LlamaConfig(
                vocabSize: 449, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                numKeyValueHeads: 2, bosTokenId: 2, eosTokenId: 3, padTokenId: 0),
            imageTokenId: 1, visionTraining: vision,
            activationCheckpointing: ActivationCheckpointing(vision: checkpointing, languageModel: checkpointing),
            seed: seed)
    }

    /// Writes `count` documents of each kind of the world (seed 11, 48px scenes) under `directory`,
    /// once: a `done` marker (written after the files) skips the write on later calls.
    /// - Returns: `directory`.
    @discardableResult
    public static func world(at directory: URL, count: Int = 48) throws -> URL {
        let marker = directory.appendingPathComponent("done")
        if FileManager.default.fileExists(atPath: marker.path) { return directory }
        let w = try SyntheticWorld(seed: 11, imageSize: 48, patchSize: 4)
        try w.write(to: directory, count: count, split: .train)
        try Data().write(to: marker)  // not Foundation's atomic write, which leaks a folder in TMPDIR
        return directory
    }

    /// The MM1 mixture (interleaved, captions, text) over the world in `data`, packed into rows of
    /// `sequenceLength`, `microBatch` rows per batch; `weights` overrides the mixture.
    public static func feed(
        _ data: URL, microBatch: Int, sequenceLength: Int = 48,
        weights: MixtureWeights = MixtureWeights(), seed: UInt64 = 1
    ) throws -> DataFeed {
        let tok = try tokenizer()
        let lock = NSLock()
        let builder = DocumentBuilder(
            encode: { text in lock.withLock { tok.encode(text) } }, bos: 2, eos: 3, imageMarker: -1,
            preprocessor: PipelineImages.clip(size: 8))
        let packing = PackingConfig(
            sequenceLength: sequenceLength, maxImages: 4, imageTokenId: 1, padTokenId: 0
        ) { img in tokensPerCrop * img.cropCount }
        return DataFeed.loader { cursor in
            let sources = try [
                DataSource(name: "interleaved", format: .interleavedJSONL, files: [data.appendingPathComponent("interleaved.jsonl")]),
                DataSource(name: "captions", format: .imageCaptionJSONL, files: [data.appendingPathComponent("captions.jsonl")]),
                DataSource(name: "text", format: .textJSONL, files: [data.appendingPathComponent("text.jsonl")]),
            ]
            return try Loader(
                sources: sources, mixture: Mixture(weights, seed: seed), builder: builder, packing: packing,
                batchSize: microBatch, workers: 0, cursor: cursor)
        }
    }

    /// A short schedule: peak 3e-3, warm-up 2, cosine over `total` steps.
    public static func optimization(total: Int, global: Int = 4, micro: Int = 2, maxNonFinite: Int = 3)
        -> OptimizationConfig
    {
        OptimizationConfig(
            learningRate: .fixed(3e-3), warmupSteps: 2, totalSteps: total, weightDecay: 0.1, globalBatch: global,
            microBatch: micro, maxNonFiniteInARow: maxNonFinite)
    }
}

/// A metrics sink that keeps every record in memory.
public final class RecordingSink: MetricsSink {
    public private(set) var records: [(stage: String, step: Int, scalars: [String: Double])] = []
    public private(set) var flushes = 0
    public init() {}
    public func record(stage: String, step: Int, scalars: [String: Double]) throws {
        records.append((stage, step, scalars))
    }
    public func flush() throws { flushes += 1 }
}

extension TinyRun {
    /// The first `rows` packed rows of the world's mixture (one row per batch of a single-process
    /// loader), computed once per process.
    public static func packedRows(_ data: URL, rows: Int, sequenceLength: Int = 48) throws -> [PackedBatch] {
        let stream = try feed(data, microBatch: 1, sequenceLength: sequenceLength).open(nil)
        return try (0..<rows).map { _ in try stream.next() }
    }

    /// Rows `rows[i]` of a batch list joined into one `[rows, T]` batch.
    public static func join(_ parts: [PackedBatch]) throws -> PackedBatch {
        let t = parts[0].shape.length
        func cat(_ k: KeyPath<PackedBatch, IndexTensor>) throws -> IndexTensor {
            try IndexTensor(shape: [parts.count, t], values: parts.flatMap { $0[keyPath: k].values })
        }
        var placeholders: [ImagePlaceholder] = []
        for (i, b) in parts.enumerated() {
            placeholders += b.placeholders.map { p in
                var q = p
                q.row = i
                return q
            }
        }
        let images = parts.compactMap(\.images)
        return try PackedBatch(
            tokens: cat(\.tokens), labels: cat(\.labels), documentIds: cat(\.documentIds),
            positionIds: cat(\.positionIds), placeholders: placeholders,
            images: images.isEmpty ? nil : Tensor.concatenate(images, axis: 0))
    }

    /// A data-parallel feed with batches independent of the rank count: global row `g` of the
    /// pre-packed `rows` (cycled) goes to rank `g % worldSize`; a micro-batch of rank `r` holds the
    /// next `microBatch` of its rows. The cursor is the number of rows consumed by all ranks together,
    /// so it is the same on every rank and resumes exactly at any rank count (`reshard` keeps it).
    /// With `failAt`, the batch numbered `failAt.batch` (0-based, this process) throws on rank
    /// `failAt.rank` (a simulated data error).
    public static func rowFeed(
        rows: [PackedBatch], microBatch: Int, rank: Int, worldSize: Int, failAt: (rank: Int, batch: Int)? = nil
    ) -> DataFeed {
        DataFeed(
            open: { json in
                let consumed = try json.map { j -> Int in
                    guard let n = Int(j.trimmingCharacters(in: .whitespaces)) else {
                        throw TrainingError("row feed cursor \(j) is not a row count")
                    }
                    return n
                } ?? 0
                return RowStream(
                    rows: rows, microBatch: microBatch, rank: rank, worldSize: worldSize, consumed: consumed,
                    failAt: failAt?.rank == rank ? failAt?.batch : nil)
            },
            reshard: { cursors, _, _ in cursors.first })
    }

    final class RowStream: BatchStream {
        let rows: [PackedBatch]
        let microBatch: Int, rank: Int, worldSize: Int
        var consumed: Int
        var served = 0
        let failAt: Int?

        init(rows: [PackedBatch], microBatch: Int, rank: Int, worldSize: Int, consumed: Int, failAt: Int?) {
            self.rows = rows
            self.microBatch = microBatch
            self.rank = rank
            self.worldSize = worldSize
            self.consumed = consumed
            self.failAt = failAt
        }

        func next() throws -> PackedBatch {
            if let failAt, served == failAt {
                throw TrainingError("row feed: simulated read error at batch \(served) of rank \(rank)")
            }
            served += 1
            // Global rows consumed..<consumed + microBatch * worldSize; this rank takes every worldSize-th.
            let mine = (0..<microBatch).map { j in rows[(consumed + j * worldSize + rank) % rows.count] }
            consumed += microBatch * worldSize
            return try TinyRun.join(mine)
        }

        func cursorJSON() throws -> String { String(consumed) }
    }
}
