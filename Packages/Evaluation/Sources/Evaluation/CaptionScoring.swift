import Foundation

/// Splits a caption into the words the caption metrics count.
///
/// The rule (the fixture script applies the same one): lower-case; every character that is not an
/// ASCII letter or digit becomes a space; split on whitespace. So "A dog's ball." gives
/// `["a", "dog", "s", "ball"]`. (The COCO caption evaluation runs a Penn-Treebank-style tokenizer and
/// then drops punctuation tokens; on plain English captions the two differ mainly in how they split
/// possessives and hyphens.)
public enum CaptionTokenizer {
    public static func words(_ caption: String) -> [String] {
        var out: [String] = []
        var current = ""
        for c in caption.lowercased() {
            if c.isASCII, c.isLetter || c.isWholeNumber {
                current.append(c)
            } else if !current.isEmpty {
                out.append(current)
                current = ""
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}

/// One image's candidate caption and its reference captions, already split into words.
public struct CaptionExample: Equatable, Sendable {
    public var id: String
    public var candidate: [String]
    public var references: [[String]]

    public init(id: String, candidate: [String], references: [[String]]) {
        self.id = id
        self.candidate = candidate
        self.references = references
    }

    /// Tokenizes raw captions with `CaptionTokenizer`.
    public init(id: String, candidate: String, references: [String]) {
        self.init(
            id: id, candidate: CaptionTokenizer.words(candidate),
            references: references.map(CaptionTokenizer.words))
    }
}

/// n-gram counts of one sentence: key is the n-gram's words joined by a space (words contain none).
struct NGramCounts {
    /// `counts[k]` holds the (k+1)-grams.
    var counts: [[String: Int]]

    init(_ words: [String], maxN: Int = 4) {
        counts = Array(repeating: [:], count: maxN)
        for k in 1...maxN where words.count >= k {
            for i in 0...(words.count - k) {
                counts[k - 1][words[i..<(i + k)].joined(separator: " "), default: 0] += 1
            }
        }
    }
}

/// Corpus BLEU as the COCO caption evaluation computes it.
public struct BLEUScore: Codable, Equatable, Sendable {
    /// BLEU-1 ... BLEU-4 (each the geometric mean of the modified precisions up to that order, times
    /// the brevity penalty).
    public var scores: [Double]
    /// Candidate words over all images.
    public var candidateLength: Int
    /// Effective reference length: per image the reference length closest to the candidate's (the
    /// shorter on a tie), summed.
    public var referenceLength: Int

    /// BLEU-4.
    public var bleu4: Double { scores[3] }

    enum CodingKeys: String, CodingKey {
        case scores
        case candidateLength = "candidate_length"
        case referenceLength = "reference_length"
    }
}

/// Caption metrics over a set of images (one candidate and one or more references each).
public enum CaptionScoring {
    /// Corpus-level BLEU-1..4: clipped n-gram matches (each candidate n-gram counted at most as often as
    /// in the reference where it is most frequent) and candidate n-gram counts summed over all images;
    /// `p_n = (matches + 1e-15) / (candidate n-grams + 1e-9)` (the reference implementation's guards
    /// against zero); BLEU-N = `(p_1 ... p_N)^(1/N)`, times the brevity penalty `exp(1 - r/c)` when the
    /// total candidate length `c` is below the total effective reference length `r` (closest reference
    /// length per image).
    /// - Throws: `EvaluationError` when there are no examples or an example has no reference.
    public static func bleu(_ examples: [CaptionExample], maxN: Int = 4) throws -> BLEUScore {
        try check(examples)
        var matches = [Int](repeating: 0, count: maxN)
        var guesses = [Int](repeating: 0, count: maxN)
        var c = 0
        var r = 0
        for e in examples {
            let cand = NGramCounts(e.candidate, maxN: maxN)
            let refs = e.references.map { NGramCounts($0, maxN: maxN) }
            let len = e.candidate.count
            c += len
            r = r + e.references.map(\.count).min { (abs($0 - len), $0) < (abs($1 - len), $1) }!
            for k in 0..<maxN {
                guesses[k] += max(0, len - k)
                for (g, n) in cand.counts[k] {
                    let maxRef = refs.map { $0.counts[k][g] ?? 0 }.max() ?? 0
                    matches[k] += min(n, maxRef)
                }
            }
        }
        var scores: [Double] = []
        var product = 1.0
        for k in 0..<maxN {
            product *= (Double(matches[k]) + 1e-15) / (Double(guesses[k]) + 1e-9)
            scores.append(pow(product, 1 / Double(k + 1)))
        }
        let ratio = (Double(c) + 1e-15) / (Double(r) + 1e-9)
        if ratio < 1 { scores = scores.map { $0 * exp(1 - 1 / ratio) } }
        return BLEUScore(scores: scores, candidateLength: c, referenceLength: r)
    }

    /// CIDEr-D over the set, and per image.
    ///
    /// For each n = 1..4, a sentence is the vector of its n-grams' `tf * (log(I) - log(max(1, df)))`,
    /// where `I` is the number of images and `df` the number of images whose references contain the
    /// n-gram (document frequencies come from the references of the evaluated set only). Against each
    /// reference: `sum_g min(cand_g, ref_g) * ref_g / (|cand| |ref|)` (the clipped cosine; 0 when
    /// either vector is zero) times the length penalty `exp(-(l_c - l_r)^2 / (2 * 6^2))`. An image's
    /// score is the mean over n and over its references, times 10; CIDEr-D is the mean over images.
    ///
    /// The length `l` in the penalty is, as in the reference implementation, the sentence's number of
    /// bigrams (its word count minus one).
    /// - Returns: the corpus score and the per-image scores in the order of `examples`.
    /// - Throws: `EvaluationError` when there are no examples or an example has no reference.
    public static func ciderD(_ examples: [CaptionExample], sigma: Double = 6) throws -> (
        score: Double, perImage: [Double]
    ) {
        try check(examples)
        let maxN = 4
        let refCounts = examples.map { $0.references.map { NGramCounts($0, maxN: maxN) } }
        var df: [String: Int] = [:]
        for refs in refCounts {
            var seen = Set<String>()
            for r in refs { for k in 0..<maxN { seen.formUnion(r.counts[k].keys) } }
            for g in seen { df[g, default: 0] += 1 }
        }
        let logImages = log(Double(examples.count))

        struct Vector {
            var weights: [[String: Double]]
            var norms: [Double]
            var length: Int
        }
        func vector(_ c: NGramCounts) -> Vector {
            var w = [[String: Double]](repeating: [:], count: maxN)
            var norms = [Double](repeating: 0, count: maxN)
            for k in 0..<maxN {
                for (g, tf) in c.counts[k] {
                    let v = Double(tf) * (logImages - log(Double(max(1, df[g] ?? 0))))
                    w[k][g] = v
                    norms[k] += v * v
                }
            }
            let bigrams = c.counts[1].values.reduce(0, +)
            return Vector(weights: w, norms: norms.map { $0.squareRoot() }, length: bigrams)
        }

        var perImage: [Double] = []
        for (e, refs) in zip(examples, refCounts) {
            let cand = vector(NGramCounts(e.candidate, maxN: maxN))
            var sum = [Double](repeating: 0, count: maxN)
            for r in refs {
                let ref = vector(r)
                let delta = Double(cand.length - ref.length)
                let penalty = exp(-(delta * delta) / (2 * sigma * sigma))
                for k in 0..<maxN {
                    var v = 0.0
                    for (g, wc) in cand.weights[k] {
                        let wr = ref.weights[k][g] ?? 0
                        v += min(wc, wr) * wr
                    }
                    if cand.norms[k] != 0, ref.norms[k] != 0 { v /= cand.norms[k] * ref.norms[k] }
                    sum[k] += v * penalty
                }
            }
            perImage.append(sum.reduce(0, +) / Double(maxN) / Double(refs.count) * 10)
        }
        return (perImage.reduce(0, +) / Double(perImage.count), perImage)
    }

    static func check(_ examples: [CaptionExample]) throws {
        guard !examples.isEmpty else { throw EvaluationError("captions", "no captions to score") }
        if let e = examples.first(where: { $0.references.isEmpty }) {
            throw EvaluationError("captions", "image \(e.id) has no reference caption")
        }
    }
}

/// The caption section of `eval.json`.
public struct CaptionScores: Codable, Equatable, Sendable {
    public var images: Int
    /// CIDEr-D as the COCO evaluation returns it (papers print it times 100: 0.85 is "85.0").
    public var ciderD: Double
    /// BLEU-4 (papers print it times 100).
    public var bleu4: Double
    /// BLEU-1..4 and the lengths behind the brevity penalty.
    public var bleu: BLEUScore

    enum CodingKeys: String, CodingKey {
        case images, bleu
        case ciderD = "cider_d"
        case bleu4 = "bleu_4"
    }

    /// Scores a set of examples with both metrics.
    public init(_ examples: [CaptionExample]) throws {
        let b = try CaptionScoring.bleu(examples)
        images = examples.count
        ciderD = try CaptionScoring.ciderD(examples).score
        bleu4 = b.bleu4
        bleu = b
    }
}
