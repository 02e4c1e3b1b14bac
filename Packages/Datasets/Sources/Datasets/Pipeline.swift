import Foundation
import Tensor

/// Turns a raw `Sample` into a `TokenizedDocument`: decodes and preprocesses its images, tokenizes its
/// texts, adds BOS (unsupervised) and EOS (supervised when the document's last text is).
public struct DocumentBuilder: @unchecked Sendable {
    public var encode: (String) -> [Int]
    public var bos: Int?
    public var eos: Int?
    public var imageMarker: Int
    public var decoder: ImageDecoder
    public var preprocessor: ImagePreprocessor

    public init(
        encode: @escaping (String) -> [Int], bos: Int? = nil, eos: Int? = nil, imageMarker: Int = -1,
        decoder: @escaping ImageDecoder = PipelineImages.decode,
        preprocessor: @escaping ImagePreprocessor = PipelineImages.clip(size: 224)
    ) {
        self.encode = encode
        self.bos = bos
        self.eos = eos
        self.imageMarker = imageMarker
        self.decoder = decoder
        self.preprocessor = preprocessor
    }

    /// - Throws: `DatasetError` naming the sample (and the image) for a missing or corrupt image, or a
    ///   document without a supervised token.
    public func build(_ s: Sample) throws -> TokenizedDocument {
        var tokens: [Int] = []
        var sup: [Bool] = []
        var images: [PreparedImage] = []
        if let b = bos { tokens.append(b); sup.append(false) }
        var lastSupervised = false
        for p in s.parts {
            switch p {
            case .text(let t, let supervised):
                let ids = encode(t)
                tokens += ids
                sup += Array(repeating: supervised, count: ids.count)
                if !ids.isEmpty { lastSupervised = supervised }
            case .image(let ref):
                do {
                    images.append(try preprocessor(try decoder(ref)))
                } catch let e as DatasetError {
                    throw DatasetError("image", "\(s.name): \(e.message)")
                } catch {
                    throw DatasetError("image", "\(s.name): \(ref.name): \(error)")
                }
                tokens.append(imageMarker)
                sup.append(false)
            }
        }
        if let e = eos { tokens.append(e); sup.append(lastSupervised) }
        let doc = TokenizedDocument(name: s.name, tokens: tokens, supervised: sup, images: images)
        guard doc.supervisedCount(imageMarker: imageMarker) > 0 else {
            throw DatasetError("sample", "\(s.name): no supervised token")
        }
        return doc
    }
}

/// What `validate` found in a source.
public struct ValidationReport: Sendable, CustomStringConvertible {
    public var records = 0
    public var goodRecords = 0
    public var images = 0
    public var problems: [Problem] = []
    public var description: String {
        "\(records) records, \(goodRecords) good, \(images) images, \(problems.count) problems"
            + problems.map { "\n  \($0)" }.joined()
    }
}

/// Reads a whole source once (one epoch, all ranks), decoding every image, and reports every problem
/// with its file and line or member: the library call behind `trainer data check`.
/// - Parameter builder: when given, samples are also tokenized (catching documents with no supervised token).
public func validate(
    format: SourceFormat, files: [URL], builder: DocumentBuilder? = nil,
    decoder: ImageDecoder = PipelineImages.decode
) throws -> ValidationReport {
    let log = ProblemLog(maximumFraction: 1.01, minimumRecords: 0, sink: { _ in })
    let src = try DataSource(name: "validate", format: format, files: files, problems: log)
    var report = ValidationReport()
    while let s = try src.next() {
        do {
            if let b = builder {
                _ = try b.build(s)
            } else {
                for case .image(let r) in s.parts {
                    do { _ = try decoder(r) } catch let e as DatasetError {
                        throw DatasetError("image", "\(s.name): \(e.message)")
                    }
                }
            }
            report.goodRecords += 1
            report.images += s.imageCount
        } catch let e as DatasetError {
            try log.skip(e.message.components(separatedBy: ": ").first ?? s.name, e.message)
        }
    }
    report.records = log.records
    report.problems = log.problems
    return report
}

/// Draws which source the next document comes from, by weight, deterministically from a seed; counts
/// what it drew (the realised proportions).
public struct Mixture: Codable, Equatable, Sendable {
    public var weights: [Double]
    public var rng: SplitMix64
    public private(set) var counts: [Int]

    /// - Throws: `DatasetError` for negative, non-finite or all-zero weights.
    public init(weights: [Double], seed: UInt64) throws {
        let total = weights.reduce(0, +)
        guard !weights.isEmpty, weights.allSatisfy({ $0 >= 0 && $0.isFinite }), total > 0 else {
            throw DatasetError("mixture", "bad weights \(weights)")
        }
        self.weights = weights.map { $0 / total }
        rng = SplitMix64(seed: seed)
        counts = Array(repeating: 0, count: weights.count)
    }

    /// MM1's mixture over (interleaved, image-caption, text-only).
    public init(_ w: MixtureWeights, seed: UInt64) throws {
        try self.init(weights: [w.interleaved, w.imageCaption, w.textOnly], seed: seed)
    }

    /// Index of the next source.
    public mutating func next() -> Int {
        let u = rng.nextUnit()
        var acc = 0.0
        var pick = weights.count - 1
        for (i, w) in weights.enumerated() {
            acc += w
            if u < acc { pick = i; break }
        }
        counts[pick] += 1
        return pick
    }

    /// Share of draws per source so far.
    public var realised: [Double] {
        let n = counts.reduce(0, +)
        return counts.map { n == 0 ? 0 : Double($0) / Double(n) }
    }
}
