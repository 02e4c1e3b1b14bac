import Tensor

/// An image ready for the vision tower: its sub-images (an overview and crops, or a single resized
/// view), preprocessed and normalised.
public struct PreparedImage: @unchecked Sendable {
    /// `[crops, C, S, S]`.
    public var pixels: Tensor

    /// - Parameter pixels: `[crops, C, S, S]` (a `[C, S, S]` tensor is taken as one crop).
    public init(pixels: Tensor) throws {
        if pixels.rank == 3 {
            self.pixels = try pixels.reshaped([1] + pixels.shape)
        } else {
            guard pixels.rank == 4, pixels.shape[0] > 0 else {
                throw DatasetError("PreparedImage", "pixels must be [crops, C, S, S], got \(pixels.shape)")
            }
            self.pixels = pixels
        }
    }

    /// Number of sub-images (crops) of this image.
    public var cropCount: Int { pixels.shape[0] }
}

/// One document after tokenization, before packing: its tokens with one `imageMarker` standing for
/// each image (the packer widens each marker into the image's placeholder tokens), which tokens carry
/// loss, and the images in the order of their markers.
public struct TokenizedDocument: @unchecked Sendable {
    /// Where the document came from ("file:line", "shard.tar:key"), used in every error about it.
    public var name: String
    /// Token ids; `imageMarker` once per image.
    public var tokens: [Int]
    /// Per token: whether it is supervised (false for prompts; ignored at markers).
    public var supervised: [Bool]
    /// The images, in the order of the markers.
    public var images: [PreparedImage]

    public init(name: String, tokens: [Int], supervised: [Bool], images: [PreparedImage] = []) {
        self.name = name
        self.tokens = tokens
        self.supervised = supervised
        self.images = images
    }

    /// Number of supervised text tokens.
    public func supervisedCount(imageMarker: Int) -> Int {
        var n = 0
        for (t, s) in zip(tokens, supervised) where s && t != imageMarker { n += 1 }
        return n
    }
}

/// Where one image's placeholder tokens stand in a packed batch.
public struct ImagePlaceholder: Equatable, Sendable {
    /// Row of the batch.
    public var row: Int
    /// First placeholder position in the row.
    public var start: Int
    /// Number of placeholder tokens (the connector's token count times the image's crops).
    public var length: Int
    /// Number of sub-images of the image; its crops are `crops` consecutive entries of `PackedBatch.images`.
    public var crops: Int

    public init(row: Int, start: Int, length: Int, crops: Int) {
        self.row = row
        self.start = start
        self.length = length
        self.crops = crops
    }
}

/// One fixed-length packed sequence.
public struct PackedSequence: @unchecked Sendable {
    /// `[T]` token ids (the image token id at image placeholders, the pad id at padding).
    public var tokens: [Int]
    /// `[T]` unshifted labels: the token id where supervised, `ignoreIndex` on image tokens, padding and prompts.
    public var labels: [Int]
    /// `[T]` document ids, 0, 1, 2, ... per document piece in the row, -1 on padding.
    public var documentIds: [Int]
    /// `[T]` positions, restarting at 0 at every document piece (and at the padding).
    public var positionIds: [Int]
    /// Placeholder runs (row 0) in order.
    public var placeholders: [ImagePlaceholder]
    /// The images of the placeholders, in order.
    public var images: [PreparedImage]
    /// Names of the documents (pieces) in the row, in order.
    public var documents: [String]
    /// Number of padding tokens at the end of the row.
    public var padding: Int
}

/// The batch contract the model consumes: `B` rows of `T` tokens with their images.
///
/// Image placeholders are runs of `imageTokenId`; the connector's tokens for image `k` (in the order
/// of `placeholders`) replace run `k`. `images` holds every image's sub-images concatenated:
/// image `k` owns `placeholders[k].crops` consecutive entries.
public struct PackedBatch: @unchecked Sendable {
    /// `[B, T]` token ids.
    public var tokens: IndexTensor
    /// `[B, T]` unshifted labels (`ignoreIndex` where unsupervised): HF `labels`, for `nextTokenTargets`.
    public var labels: IndexTensor
    /// `[B, T]` document ids (-1 on padding): attention never crosses documents.
    public var documentIds: IndexTensor
    /// `[B, T]` position ids restarting per document.
    public var positionIds: IndexTensor
    /// `[B, T]` 1 for real tokens, 0 for padding.
    public var keyPadding: IndexTensor
    /// Placeholder runs, by row then position.
    public var placeholders: [ImagePlaceholder]
    /// `[totalCrops, C, S, S]` every image's sub-images, in placeholder order; nil without images.
    public var images: Tensor?
    /// Document names per row.
    public var documents: [[String]]
    /// Padding tokens / all tokens.
    public var paddingFraction: Double

    /// Rows and sequence length.
    public var shape: (batch: Int, length: Int) { (tokens.shape[0], tokens.shape[1]) }

    /// A batch from its parts (reference batches in tests; the packer builds batches with `init(rows:)`).
    /// - Parameters: tokens, labels, documentIds, positionIds: `[B, T]`; images: `[crops, C, S, S]`.
    /// - Throws: `DatasetError` naming both shapes when a `[B, T]` tensor differs from `tokens`.
    public init(
        tokens: IndexTensor, labels: IndexTensor, documentIds: IndexTensor, positionIds: IndexTensor,
        placeholders: [ImagePlaceholder], images: Tensor?
    ) throws {
        for (name, t) in [("labels", labels), ("documentIds", documentIds), ("positionIds", positionIds)]
        where t.shape != tokens.shape {
            throw DatasetError("PackedBatch", "\(name) \(t.shape) differs from tokens \(tokens.shape)")
        }
        guard tokens.shape.count == 2 else {
            throw DatasetError("PackedBatch", "tokens must be [B, T], got \(tokens.shape)")
        }
        self.tokens = tokens
        self.labels = labels
        self.documentIds = documentIds
        self.positionIds = positionIds
        keyPadding = try IndexTensor(shape: tokens.shape, values: documentIds.values.map { $0 < 0 ? 0 : 1 })
        self.placeholders = placeholders
        self.images = images
        documents = (0..<tokens.shape[0]).map { _ in [] }
        let pad = documentIds.values.reduce(0) { $0 + ($1 < 0 ? 1 : 0) }
        paddingFraction = Double(pad) / Double(max(1, documentIds.values.count))
    }

    /// Stacks rows of equal length into a batch.
    public init(rows: [PackedSequence]) throws {
        guard let t = rows.first?.tokens.count else { throw DatasetError("PackedBatch", "no rows") }
        guard rows.allSatisfy({ $0.tokens.count == t }) else {
            throw DatasetError("PackedBatch", "rows of different lengths \(rows.map { $0.tokens.count })")
        }
        let b = rows.count
        tokens = try IndexTensor(shape: [b, t], values: rows.flatMap(\.tokens))
        labels = try IndexTensor(shape: [b, t], values: rows.flatMap(\.labels))
        documentIds = try IndexTensor(shape: [b, t], values: rows.flatMap(\.documentIds))
        positionIds = try IndexTensor(shape: [b, t], values: rows.flatMap(\.positionIds))
        keyPadding = try IndexTensor(
            shape: [b, t], values: rows.flatMap { r in r.documentIds.map { $0 < 0 ? 0 : 1 } })
        placeholders = []
        var pixels: [Tensor] = []
        for (i, r) in rows.enumerated() {
            placeholders += r.placeholders.map {
                var p = $0; p.row = i; return p
            }
            pixels += r.images.map(\.pixels)
        }
        images = pixels.isEmpty ? nil : try Tensor.concatenate(pixels, axis: 0)
        documents = rows.map(\.documents)
        paddingFraction = Double(rows.reduce(0) { $0 + $1.padding }) / Double(b * t)
    }
}

/// Packing settings (MM1: 4096 tokens, at most 16 source images per sequence).
public struct PackingConfig: @unchecked Sendable {
    public var sequenceLength: Int
    /// Most source images per sequence (sub-image crops count once; their tokens count in full).
    public var maxImages: Int
    /// The id written at image placeholder positions.
    public var imageTokenId: Int
    /// The id written at padding.
    public var padTokenId: Int
    /// The value in `TokenizedDocument.tokens` that stands for one image.
    public var imageMarker: Int
    /// Label of unsupervised positions.
    public var ignoreIndex: Int
    /// Placeholder tokens for one image: the connector's `tokenCount(grid:)` times the image's crops,
    /// for example `{ img in try connector.tokenCount(grid: grid) * img.cropCount }`.
    public var imageTokenCount: (PreparedImage) throws -> Int

    public init(
        sequenceLength: Int = 4096, maxImages: Int = 16, imageTokenId: Int, padTokenId: Int,
        imageMarker: Int = -1, ignoreIndex: Int = -100,
        imageTokenCount: @escaping (PreparedImage) throws -> Int
    ) {
        self.sequenceLength = sequenceLength
        self.maxImages = maxImages
        self.imageTokenId = imageTokenId
        self.padTokenId = padTokenId
        self.imageMarker = imageMarker
        self.ignoreIndex = ignoreIndex
        self.imageTokenCount = imageTokenCount
    }
}

/// Running totals of a packer.
public struct PackingReport: Codable, Equatable, Sendable {
    public var sequences = 0
    public var tokens = 0
    public var paddingTokens = 0
    public var imageTokens = 0
    public var supervisedTokens = 0
    public var images = 0
    public var documents = 0
    /// Documents split over more than one sequence (each continuation counts once).
    public var splits = 0
    public init() {}
    /// Padding tokens / all tokens (0 before the first sequence).
    public var paddingFraction: Double { tokens == 0 ? 0 : Double(paddingTokens) / Double(tokens) }
}

/// A document with its image markers widened into placeholder runs.
struct ExpandedDocument {
    var name: String
    var tokens: [Int]
    var labels: [Int]
    /// (start, length, image index) per image, ascending.
    var runs: [(start: Int, length: Int)]
    var images: [PreparedImage]
}

/// Packs documents into fixed-length sequences, in order, splitting a document that does not fit at a
/// token boundary (never inside an image's placeholders) and continuing it in the next sequence.
///
/// Use: `push` a document whenever `nextSequence()` returns nil; `nextSequence()` returns each row as
/// soon as it is full. Between rows the packer holds at most one partly consumed document
/// (`carryOffset` tokens of it already packed), which is all a resume has to restore.
public struct SequencePacker {
    public let config: PackingConfig
    public private(set) var report = PackingReport()
    var pending: ExpandedDocument?
    /// Tokens of the pending document already packed.
    public private(set) var carryOffset = 0
    var nextRun = 0
    // the row being built
    var row = PackedSequence(
        tokens: [], labels: [], documentIds: [], positionIds: [], placeholders: [], images: [], documents: [],
        padding: 0)

    public init(config: PackingConfig) throws {
        guard config.sequenceLength > 0, config.maxImages >= 0 else {
            throw DatasetError(
                "SequencePacker",
                "sequenceLength \(config.sequenceLength) and maxImages \(config.maxImages) must be positive")
        }
        self.config = config
    }

    /// Whether the packer has no pending document (it needs `push` before `nextSequence` can make progress).
    public var needsDocument: Bool { pending == nil }
    /// Whether a row is partly filled.
    public var hasPartialRow: Bool { !row.tokens.isEmpty }

    /// Widens the document's image markers and checks it; does not change the packer.
    /// - Throws: `DatasetError` naming the document when its markers and images disagree, an image
    ///   needs more tokens than a sequence holds, or nothing in it is supervised.
    public func expand(_ doc: TokenizedDocument) throws -> (
        tokens: [Int], labels: [Int], runs: [(start: Int, length: Int)]
    ) {
        let e = try expandDocument(doc)
        return (e.tokens, e.labels, e.runs)
    }

    func expandDocument(_ doc: TokenizedDocument) throws -> ExpandedDocument {
        let c = config
        guard doc.tokens.count == doc.supervised.count else {
            throw DatasetError(
                "packing", "\(doc.name): \(doc.tokens.count) tokens but \(doc.supervised.count) loss flags")
        }
        let markers = doc.tokens.reduce(0) { $0 + ($1 == c.imageMarker ? 1 : 0) }
        guard markers == doc.images.count else {
            throw DatasetError(
                "packing", "\(doc.name): \(doc.images.count) images but \(markers) image placeholders")
        }
        guard doc.images.isEmpty || c.maxImages > 0 else {
            throw DatasetError("packing", "\(doc.name): \(doc.images.count) images but maxImages is 0")
        }
        var e = ExpandedDocument(name: doc.name, tokens: [], labels: [], runs: [], images: doc.images)
        e.tokens.reserveCapacity(doc.tokens.count)
        var k = 0
        for (t, s) in zip(doc.tokens, doc.supervised) {
            if t == c.imageMarker {
                let n = try c.imageTokenCount(doc.images[k])
                guard n > 0, n <= c.sequenceLength else {
                    throw DatasetError(
                        "packing",
                        "\(doc.name): image \(k) needs \(n) tokens; a sequence holds \(c.sequenceLength)")
                }
                e.runs.append((e.tokens.count, n))
                e.tokens += Array(repeating: c.imageTokenId, count: n)
                e.labels += Array(repeating: c.ignoreIndex, count: n)
                k += 1
            } else {
                e.tokens.append(t)
                e.labels.append(s ? t : c.ignoreIndex)
            }
        }
        guard e.labels.contains(where: { $0 != c.ignoreIndex }) else {
            throw DatasetError("packing", "\(doc.name): no supervised token")
        }
        return e
    }

    /// Hands the packer its next document.
    /// - Throws: as `expand`, or when a document is still pending.
    public mutating func push(_ doc: TokenizedDocument) throws {
        guard pending == nil else {
            throw DatasetError("SequencePacker", "push while \(pending!.name) is pending")
        }
        pending = try expandDocument(doc)
        carryOffset = 0
        nextRun = 0
        report.documents += 1
    }

    /// Restores a carried-over document: `push` it and mark its first `offset` tokens as packed.
    public mutating func push(_ doc: TokenizedDocument, resumingAt offset: Int) throws {
        try push(doc)
        guard let p = pending, offset >= 0, offset < p.tokens.count else {
            throw DatasetError(
                "SequencePacker",
                "\(doc.name): carry offset \(offset) outside its \(pending?.tokens.count ?? 0) tokens")
        }
        report.documents -= 1
        carryOffset = offset
        while nextRun < p.runs.count, p.runs[nextRun].start < offset { nextRun += 1 }
    }

    /// Packs from the pending document; returns a full row, or nil when the pending document is used up
    /// (then `push` the next one).
    public mutating func nextSequence() -> PackedSequence? {
        let length = config.sequenceLength
        while let p = pending {
            let space = length - row.tokens.count
            let imagesInRow = row.placeholders.count
            var end = min(p.tokens.count, carryOffset + space)
            var usedRuns = 0
            var r = nextRun
            while r < p.runs.count, p.runs[r].start < end {
                let run = p.runs[r]
                if run.start + run.length > end || imagesInRow + usedRuns >= config.maxImages {
                    end = run.start
                    break
                }
                usedRuns += 1
                r += 1
            }
            if end > carryOffset {
                appendPiece(p, from: carryOffset, to: end, runs: nextRun..<(nextRun + usedRuns))
                carryOffset = end
                nextRun += usedRuns
            }
            if carryOffset == p.tokens.count {
                pending = nil
                carryOffset = 0
                nextRun = 0
            }
            if row.tokens.count == length { return takeRow() }
            if pending != nil {
                // The next piece cannot go into this row (an image that does not fit or the image limit).
                if row.tokens.isEmpty { pending = nil; return nil }  // unreachable: checked in expand
                return takeRow()
            }
        }
        return nil
    }

    /// Pads and returns the partly filled row (at the end of the data), or nil when it is empty.
    public mutating func finish() -> PackedSequence? { row.tokens.isEmpty ? nil : takeRow() }

    mutating func appendPiece(_ p: ExpandedDocument, from a: Int, to b: Int, runs: Range<Int>) {
        let doc = row.documents.count
        if a > 0 { report.splits += 1 }
        for k in runs {
            let run = p.runs[k]
            row.placeholders.append(
                ImagePlaceholder(
                    row: 0, start: row.tokens.count + run.start - a, length: run.length,
                    crops: p.images[k].cropCount))
            row.images.append(p.images[k])
            report.imageTokens += run.length
        }
        report.images += runs.count
        row.tokens += p.tokens[a..<b]
        row.labels += p.labels[a..<b]
        report.supervisedTokens += p.labels[a..<b].reduce(0) { $0 + ($1 == config.ignoreIndex ? 0 : 1) }
        row.documentIds += Array(repeating: doc, count: b - a)
        row.positionIds += Array(0..<(b - a))
        row.documents.append(a > 0 ? "\(p.name)@\(a)" : p.name)
    }

    mutating func takeRow() -> PackedSequence {
        let pad = config.sequenceLength - row.tokens.count
        var out = row
        out.tokens += Array(repeating: config.padTokenId, count: pad)
        out.labels += Array(repeating: config.ignoreIndex, count: pad)
        out.documentIds += Array(repeating: -1, count: pad)
        out.positionIds += Array(0..<pad)
        out.padding = pad
        report.sequences += 1
        report.tokens += config.sequenceLength
        report.paddingTokens += pad
        row = PackedSequence(
            tokens: [], labels: [], documentIds: [], positionIds: [], placeholders: [], images: [],
            documents: [], padding: 0)
        return out
    }
}
