import Datasets
import Tensor
import Testing

/// A document of `text` tokens with `images` images placed at seeded positions; prompt tokens
/// (unsupervised) at the start.
func makeDocument(
    _ name: String, text: Int, images: Int, prompt: Int = 0, crops: Int = 1, rng: inout SplitMix64
) throws -> TokenizedDocument {
    var tokens = (0..<text).map { _ in 10 + rng.next(below: 90) }
    var supervised = (0..<text).map { $0 >= prompt }
    var imgs: [PreparedImage] = []
    for _ in 0..<images {
        let at = rng.next(below: tokens.count + 1)
        tokens.insert(-1, at: at)
        supervised.insert(false, at: at)
        imgs.append(
            try PreparedImage(
                pixels: Tensor(shape: [crops, 3, 2, 2], scalars: [Float](repeating: 0.5, count: crops * 12))))
    }
    return TokenizedDocument(name: name, tokens: tokens, supervised: supervised, images: imgs)
}

func packAll(_ docs: [TokenizedDocument], config: PackingConfig) throws -> (
    rows: [PackedSequence], report: PackingReport
) {
    var packer = try SequencePacker(config: config)
    var rows: [PackedSequence] = []
    var i = 0
    while true {
        if let r = packer.nextSequence() { rows.append(r); continue }
        guard i < docs.count else { break }
        try packer.push(docs[i])
        i += 1
    }
    if let r = packer.finish() { rows.append(r) }
    return (rows, packer.report)
}

let imageId = 1, padId = 0

@Test func packedRowsRespectLengthImagesMasksAndLoss() throws {
    var rng = SplitMix64(seed: 7)
    var docs: [TokenizedDocument] = []
    for i in 0..<300 {
        docs.append(
            try makeDocument(
                "doc\(i)", text: 5 + rng.next(below: 400), images: rng.next(below: 6),
                prompt: rng.next(below: 4), crops: 1 + rng.next(below: 2), rng: &rng))
    }
    let config = PackingConfig(sequenceLength: 512, maxImages: 4, imageTokenId: imageId, padTokenId: padId) {
        img in 20 * img.cropCount
    }
    let (rows, report) = try packAll(docs, config: config)
    #expect(rows.count == report.sequences)
    var supervised = 0
    for row in rows {
        #expect(
            row.tokens.count == 512 && row.labels.count == 512 && row.documentIds.count == 512
                && row.positionIds.count == 512)
        #expect(row.placeholders.count <= 4 && row.images.count == row.placeholders.count)
        // Document ids are 0, 1, 2, ... in runs, then -1 padding; positions restart at each change.
        var expectedDoc = 0
        for t in 0..<512 {
            let d = row.documentIds[t]
            if t > 0, d != row.documentIds[t - 1] {
                #expect(row.positionIds[t] == 0, "position does not restart at a document change")
                if d >= 0 { expectedDoc += 1; #expect(d == expectedDoc) }
            } else if t > 0 {
                #expect(row.positionIds[t] == row.positionIds[t - 1] + 1)
            } else {
                #expect(d == 0 && row.positionIds[0] == 0)
            }
            if d < 0 { #expect(row.tokens[t] == padId && row.labels[t] == -100) }
        }
        #expect(row.documentIds.suffix(row.padding).allSatisfy { $0 == -1 })
        #expect(row.documentIds.prefix(512 - row.padding).allSatisfy { $0 >= 0 })
        // Placeholders are whole runs of the image token, never labelled, and nothing else is the image token.
        var isImage = [Bool](repeating: false, count: 512)
        for p in row.placeholders {
            #expect(p.start + p.length <= 512 - row.padding && p.length == 20 * p.crops)
            #expect(
                Set(row.documentIds[p.start..<(p.start + p.length)]).count == 1,
                "an image is split across documents")
            for t in p.start..<(p.start + p.length) { isImage[t] = true }
        }
        for t in 0..<512 {
            #expect((row.tokens[t] == imageId) == isImage[t])
            if isImage[t] { #expect(row.labels[t] == -100) }
            if row.labels[t] != -100 { #expect(row.labels[t] == row.tokens[t]); supervised += 1 }
        }
    }
    // Every token of every document lands somewhere, once: text tokens in order.
    let expectedText = docs.flatMap { $0.tokens.filter { $0 != -1 } }
    let packedText = rows.flatMap { r in
        r.tokens.enumerated().filter { r.documentIds[$0.offset] >= 0 && $0.element != imageId }.map(\.element)
    }
    #expect(packedText == expectedText)
    let expectedSupervised = docs.reduce(0) { $0 + $1.supervisedCount(imageMarker: -1) }
    #expect(supervised == expectedSupervised && report.supervisedTokens == supervised)
    #expect(report.images == docs.reduce(0) { $0 + $1.images.count })
    #expect(report.splits > 0)
    // With 4 images per row binding constantly, rows end early; with 16 they rarely do.
    let roomy = PackingConfig(sequenceLength: 512, maxImages: 16, imageTokenId: imageId, padTokenId: padId) {
        img in 20 * img.cropCount
    }
    let loose = try packAll(docs, config: roomy).report
    #expect(
        loose.paddingFraction < 0.05 && loose.paddingFraction < report.paddingFraction,
        "padding \(loose.paddingFraction) vs \(report.paddingFraction)")
    // The batch stacks rows and concatenates the crops in placeholder order.
    let batch = try PackedBatch(rows: Array(rows.prefix(3)))
    #expect(batch.tokens.shape == [3, 512] && batch.keyPadding.shape == [3, 512])
    #expect(batch.images?.shape[0] == batch.placeholders.reduce(0) { $0 + $1.crops })
    #expect(batch.placeholders.map(\.row) == batch.placeholders.map(\.row).sorted())
}

@Test func textOnlyPackingHasNoPaddingUntilTheEnd() throws {
    var rng = SplitMix64(seed: 3)
    let docs = try (0..<50).map {
        try makeDocument("t\($0)", text: 30 + rng.next(below: 300), images: 0, rng: &rng)
    }
    let config = PackingConfig(sequenceLength: 256, imageTokenId: imageId, padTokenId: padId) { _ in 8 }
    let (rows, _) = try packAll(docs, config: config)
    #expect(rows.dropLast().allSatisfy { $0.padding == 0 })
}

@Test func mismatchedImagesAndPlaceholdersNameTheSample() throws {
    var rng = SplitMix64(seed: 1)
    var doc = try makeDocument("captions.jsonl:17", text: 20, images: 2, rng: &rng)
    doc.images.removeLast()
    var packer = try SequencePacker(
        config: PackingConfig(sequenceLength: 64, imageTokenId: 1, padTokenId: 0) { _ in 4 })
    #expect(throws: DatasetError.self) { try packer.push(doc) }
    do { try packer.push(doc) } catch let e as DatasetError {
        #expect(
            e.message.contains("captions.jsonl:17") && e.message.contains("1 images but 2 image placeholders")
        )
    }
    // An image bigger than a sequence, and a document with nothing supervised, are errors naming it too.
    let big = try makeDocument("big", text: 5, images: 1, rng: &rng)
    var small = try SequencePacker(
        config: PackingConfig(sequenceLength: 16, imageTokenId: 1, padTokenId: 0) { _ in 17 })
    #expect(throws: DatasetError.self) { try small.push(big) }
    let silent = TokenizedDocument(
        name: "prompt-only", tokens: [5, 6, 7], supervised: [false, false, false])
    do { try packer.push(silent); Issue.record("expected an error") } catch let e as DatasetError {
        #expect(e.message.contains("prompt-only") && e.message.contains("no supervised"))
    }
}

@Test func resumingACarriedDocumentContinuesTheSameRows() throws {
    var rng = SplitMix64(seed: 11)
    let docs = try (0..<40).map {
        try makeDocument("d\($0)", text: 50 + rng.next(below: 200), images: rng.next(below: 3), rng: &rng)
    }
    let config = PackingConfig(sequenceLength: 128, maxImages: 2, imageTokenId: 1, padTokenId: 0) { _ in 16 }
    let (all, _) = try packAll(docs, config: config)
    // Stop after row 7, remember (next document index, carry offset), restart from there.
    var packer = try SequencePacker(config: config)
    var rows: [PackedSequence] = []
    var i = 0
    while rows.count < 7 {
        if let r = packer.nextSequence() { rows.append(r); continue }
        try packer.push(docs[i]); i += 1
    }
    #expect(!packer.hasPartialRow)
    let carried = packer.needsDocument ? nil : (i - 1, packer.carryOffset)
    var resumed = try SequencePacker(config: config)
    var j = i
    if let (d, off) = carried { try resumed.push(docs[d], resumingAt: off) }
    while true {
        if let r = resumed.nextSequence() { rows.append(r); continue }
        guard j < docs.count else { break }
        try resumed.push(docs[j]); j += 1
    }
    if let r = resumed.finish() { rows.append(r) }
    #expect(rows.count == all.count)
    for (a, b) in zip(rows, all) {
        #expect(
            a.tokens == b.tokens && a.labels == b.labels && a.documentIds == b.documentIds
                && a.positionIds == b.positionIds && a.placeholders == b.placeholders)
    }
}
