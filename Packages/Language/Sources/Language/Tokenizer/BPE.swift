import Foundation

/// A BPE model as HF `tokenizers` defines it (`model.type == "BPE"` in `tokenizer.json`): a vocabulary,
/// ranked merges, optional byte fallback (`<0xXX>` tokens for characters outside the vocabulary),
/// an unknown token (fused when `fuseUnknown`), and `ignoreMerges` (a word that is itself in the
/// vocabulary is emitted whole, as Llama 3 does).
///
/// A `WordLevel` model (`model.type == "WordLevel"`: a vocabulary and an unknown token, no merges) is
/// held as a `BPEModel` with `wordLevel` set: every pre-tokenized word is one id, or the unknown token.
public struct BPEModel: Sendable {
    public let vocabulary: [String: Int]
    /// Token strings by id (gaps are empty).
    public let tokens: [String]
    /// (left id, right id) packed into one key -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    public let unknownToken: String?
    public let byteFallback: Bool
    public let fuseUnknown: Bool
    public let ignoreMerges: Bool
    /// HF `WordLevel`: a word is its vocabulary id or the unknown token (nothing when there is none).
    public let wordLevel: Bool
    /// Ids of `<0x00>` ... `<0xFF>` when byte fallback is on.
    let byteTokens: [Int]?
    /// Ids of the single-scalar tokens, by scalar value (the starting symbols of every word).
    let scalarTokens: [UInt32: Int]

    static func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    /// - Throws: `TokenizerError` when a merge names a token outside the vocabulary.
    public init(
        vocabulary: [String: Int], merges: [(String, String)], unknownToken: String? = nil,
        byteFallback: Bool = false,
        fuseUnknown: Bool = false, ignoreMerges: Bool = false, wordLevel: Bool = false
    ) throws {
        self.vocabulary = vocabulary
        self.wordLevel = wordLevel
        var toks = [String](repeating: "", count: (vocabulary.values.max() ?? -1) + 1)
        for (t, i) in vocabulary { toks[i] = t }
        tokens = toks
        var m: [UInt64: (Int32, Int32)] = [:]
        m.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocabulary[a], let ib = vocabulary[b] else {
                throw TokenizerError("merge \(rank) (\"\(a)\" \"\(b)\") names a token outside the vocabulary")
            }
            guard let merged = vocabulary[a + b] else {
                throw TokenizerError(
                    "merge \(rank) (\"\(a)\" \"\(b)\") produces \"\(a + b)\", which is not in the vocabulary")
            }
            let k = Self.key(ia, ib)
            if m[k] == nil { m[k] = (Int32(rank), Int32(merged)) }
        }
        self.merges = m
        var singles: [UInt32: Int] = [:]
        for (t, i) in vocabulary {
            let u = t.unicodeScalars
            if u.count == 1 { singles[u.first!.value] = i }
        }
        scalarTokens = singles
        self.unknownToken = unknownToken
        self.byteFallback = byteFallback
        self.fuseUnknown = fuseUnknown
        self.ignoreMerges = ignoreMerges
        if byteFallback {
            let ids = (0..<256).map { vocabulary[String(format: "<0x%02X>", $0)] }
            byteTokens = ids.allSatisfy { $0 != nil } ? ids.map { $0! } : nil
        } else {
            byteTokens = nil
        }
    }

    /// Token ids of one pre-tokenized word.
    public func encode(word: Substring, into out: inout [Int]) {
        if word.isEmpty { return }
        if wordLevel {
            if let id = vocabulary[String(word)] ?? unknownToken.flatMap({ vocabulary[$0] }) { out.append(id) }
            return
        }
        if ignoreMerges, let id = vocabulary[String(word)] { out.append(id); return }
        var symbols: [Int] = []
        symbols.reserveCapacity(word.unicodeScalars.count)
        let unk = unknownToken.flatMap { vocabulary[$0] }
        var pendingUnknown = false
        func flushUnknown() {
            if pendingUnknown, let unk { symbols.append(unk) }
            pendingUnknown = false
        }
        for scalar in word.unicodeScalars {
            if let id = scalarTokens[scalar.value] {
                flushUnknown()
                symbols.append(id)
                continue
            }
            if let byteTokens {
                flushUnknown()
                for b in String(scalar).utf8 { symbols.append(byteTokens[Int(b)]) }
                continue
            }
            guard unk != nil else { continue }  // no unknown token: the character is dropped (as HF)
            if pendingUnknown && !fuseUnknown { flushUnknown() }
            pendingUnknown = true
        }
        flushUnknown()
        mergeAll(&symbols)
        out.append(contentsOf: symbols)
    }

    /// Applies merges lowest rank first (leftmost among equal ranks), as HF's `Word::merge_all`.
    func mergeAll(_ ids: inout [Int]) {
        let n = ids.count
        if n < 2 { return }
        if n <= 12 {  // short words: scanning beats a heap
            while ids.count > 1 {
                var best = Int32.max, at = -1, newId: Int32 = 0
                for i in 0..<(ids.count - 1) {
                    if let m = merges[Self.key(ids[i], ids[i + 1])], m.rank < best {
                        best = m.rank; at = i; newId = m.id
                    }
                }
                if at < 0 { break }
                ids[at] = Int(newId)
                ids.remove(at: at + 1)
            }
            return
        }
        // Linked list of symbols plus a min-heap of candidate merges keyed by (rank, position).
        var sym = ids
        var prev = Array(-1..<(n - 1))
        var next = Array(1...n)
        next[n - 1] = -1
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        for i in 0..<(n - 1) {
            if let m = merges[Self.key(sym[i], sym[i + 1])] {
                heap.push(.init(rank: m.rank, pos: Int32(i), id: m.id))
            }
        }
        while let top = heap.pop() {
            let p = Int(top.pos)
            guard alive[p], next[p] >= 0 else { continue }
            let q = next[p]
            guard let m = merges[Self.key(sym[p], sym[q])], m.id == top.id else { continue }
            sym[p] = Int(m.id)
            alive[q] = false
            next[p] = next[q]
            if next[q] >= 0 { prev[next[q]] = p }
            if prev[p] >= 0, let l = merges[Self.key(sym[prev[p]], sym[p])] {
                heap.push(.init(rank: l.rank, pos: Int32(prev[p]), id: l.id))
            }
            if next[p] >= 0, let r = merges[Self.key(sym[p], sym[next[p]])] {
                heap.push(.init(rank: r.rank, pos: Int32(p), id: r.id))
            }
        }
        ids.removeAll(keepingCapacity: true)
        var i = 0
        while i >= 0 { ids.append(sym[i]); i = next[i] }
    }
}

struct MergeHeap {
    struct Item { var rank: Int32; var pos: Int32; var id: Int32 }
    var items: [Item] = []

    @inline(__always) static func less(_ a: Item, _ b: Item) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }

    mutating func push(_ x: Item) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Item? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Self.less(items[l], items[m]) { m = l }
                if r < items.count && Self.less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}

/// A problem reading or applying a tokenizer.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "tokenizer: \(message)" }
}

/// GPT-2's reversible byte <-> printable character mapping used by byte-level BPE.
public enum ByteLevelAlphabet {
    /// The character standing for each byte.
    public static let byteToScalar: [Unicode.Scalar] = {
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        var extra = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            out[b] = Unicode.Scalar(UInt32(printable ? b : 256 + extra))!
            if !printable { extra += 1 }
        }
        return out
    }()

    /// The byte each alphabet character stands for.
    public static let scalarToByte: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { d[s.value] = UInt8(b) }
        return d
    }()

    /// UTF-8 of each byte's alphabet character.
    static let byteToUTF8: [[UInt8]] = byteToScalar.map { Array(String($0).utf8) }

    /// The byte-level spelling of `text`'s UTF-8 bytes.
    public static func encode(_ text: Substring) -> String {
        var buf: [UInt8] = []
        buf.reserveCapacity(text.utf8.count * 2)
        for b in text.utf8 { buf.append(contentsOf: byteToUTF8[Int(b)]) }
        return String(decoding: buf, as: UTF8.self)
    }
}
