import Foundation

// The stages of a HF `tokenizer.json` pipeline that BPE tokenizers use: normalizers, pre-tokenizers,
// decoders and post-processors, each read from its JSON object.

typealias JSONObject = [String: Any]

func jsonString(_ v: Any?) -> String? { v as? String }
func jsonBool(_ v: Any?, _ d: Bool) -> Bool { (v as? Bool) ?? (v as? NSNumber)?.boolValue ?? d }
func jsonInt(_ v: Any?) -> Int? { (v as? Int) ?? (v as? NSNumber)?.intValue }

/// A `pattern` field: `{"String": "..."}` or `{"Regex": "..."}`.
enum Pattern {
    case literal(String)
    case regex(NSRegularExpression)
    /// GPT-2's or Llama 3's split regex, matched by the scanner (same pieces, much faster).
    case builtin(BuiltinSplitPattern)

    init(_ json: Any?, stage: String) throws {
        guard let o = json as? JSONObject else { throw TokenizerError("\(stage): missing pattern") }
        if let s = o["String"] as? String {
            self = .literal(s)
        } else if let r = o["Regex"] as? String {
            if let b = BuiltinSplitPattern(rawValue: r) { self = .builtin(b); return }
            do { self = .regex(try NSRegularExpression(pattern: r)) } catch {
                throw TokenizerError("\(stage): cannot compile regex \(r): \(error)")
            }
        } else {
            throw TokenizerError("\(stage): pattern must be String or Regex, got \(o)")
        }
    }

    /// Non-overlapping match ranges in `s`, left to right.
    func matches(in s: Substring) -> [Range<String.Index>] {
        switch self {
        case .literal(let lit):
            guard !lit.isEmpty else { return [] }
            var out: [Range<String.Index>] = []
            var from = s.startIndex
            while let r = s[from...].range(of: lit) {
                out.append(r)
                from = r.upperBound
            }
            return out
        case .builtin(let b):
            return b.matches(in: s)
        case .regex(let re):
            // UTF-16 offsets map to scalar boundaries exactly (never to grapheme clusters, which
            // would glue "\r\n" or a joiner to its neighbour).
            let str = String(s)
            let ns = NSRange(location: 0, length: str.utf16.count)
            return re.matches(in: str, range: ns).compactMap { m in
                guard m.range.length > 0 else { return nil }
                let lo = s.utf16.index(s.startIndex, offsetBy: m.range.location)
                let hi = s.utf16.index(lo, offsetBy: m.range.length)
                return lo..<hi
            }
        }
    }
}

// MARK: - Normalizers

indirect enum Normalizer {
    case sequence([Normalizer])
    case prepend(String)
    case replace(Pattern, String)
    case nfc, nfkc, nfd, nfkd, lowercase
    case strip(left: Bool, right: Bool)

    init(_ o: JSONObject) throws {
        switch jsonString(o["type"]) {
        case "Sequence":
            self = .sequence(try ((o["normalizers"] as? [JSONObject]) ?? []).map(Normalizer.init))
        case "Prepend": self = .prepend(jsonString(o["prepend"]) ?? "")
        case "Replace":
            self = .replace(
                try Pattern(o["pattern"], stage: "Replace normalizer"), jsonString(o["content"]) ?? "")
        case "NFC": self = .nfc
        case "NFKC": self = .nfkc
        case "NFD": self = .nfd
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Strip":
            self = .strip(left: jsonBool(o["strip_left"], true), right: jsonBool(o["strip_right"], true))
        case let t: throw TokenizerError("unsupported normalizer \(t ?? "nil")")
        }
    }

    func apply(_ s: String) -> String {
        switch self {
        case .sequence(let ns): return ns.reduce(s) { $1.apply($0) }
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let pattern, let content): return replacing(pattern, in: s, with: content)
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .strip(let l, let r):
            var sub = Substring(s)
            if l { sub = sub.drop(while: { $0.isWhitespace }) }
            if r { while let last = sub.last, last.isWhitespace { sub = sub.dropLast() } }
            return String(sub)
        }
    }

    /// Whether this normalizer puts a space marker before the text (sentencepiece style).
    var prependsSpace: Bool {
        switch self {
        case .sequence(let ns): return ns.contains { $0.prependsSpace }
        case .prepend: return true
        default: return false
        }
    }
}

/// Replaces every occurrence of `literal` by `content`, comparing Unicode scalars (a space followed by
/// a combining mark is still a space here, unlike in `Character` comparisons).
func replacingScalars(_ literal: String, in s: String, with content: String) -> String {
    let pat = Array(literal.unicodeScalars)
    guard let first = pat.first else { return s }
    let src = Array(s.unicodeScalars)
    var out = String.UnicodeScalarView()
    var i = 0
    while i < src.count {
        if src[i] == first, i + pat.count <= src.count, Array(src[i..<(i + pat.count)]) == pat {
            out.append(contentsOf: content.unicodeScalars)
            i += pat.count
        } else {
            out.append(src[i])
            i += 1
        }
    }
    return String(out)
}

func replacing(_ pattern: Pattern, in s: String, with content: String) -> String {
    if case .literal(let lit) = pattern { return replacingScalars(lit, in: s, with: content) }
    var out = ""
    var last = s.startIndex
    for r in pattern.matches(in: Substring(s)) {
        out += s[last..<r.lowerBound]
        out += content
        last = r.upperBound
    }
    out += s[last...]
    return out
}

// MARK: - Pre-tokenizers

indirect enum PreTokenizer {
    case sequence([PreTokenizer])
    /// Byte-level: optional prefix space, optional GPT-2 split, then bytes mapped to the alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(Pattern, behavior: String, invert: Bool)
    case metaspace(replacement: String, prependScheme: String, split: Bool)
    case digits(individual: Bool)
    case whitespaceSplit

    init(_ o: JSONObject) throws {
        switch jsonString(o["type"]) {
        case "Sequence":
            self = .sequence(try ((o["pretokenizers"] as? [JSONObject]) ?? []).map(PreTokenizer.init))
        case "ByteLevel":
            self = .byteLevel(
                addPrefixSpace: jsonBool(o["add_prefix_space"], true),
                useRegex: jsonBool(o["use_regex"], true))
        case "Split":
            let behavior = jsonString(o["behavior"]) ?? "Isolated"
            guard ["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext"].contains(behavior) else {
                throw TokenizerError("unsupported Split behavior \(behavior)")
            }
            self = .split(
                try Pattern(o["pattern"], stage: "Split pre-tokenizer"), behavior: behavior,
                invert: jsonBool(o["invert"], false))
        case "Metaspace":
            var scheme = jsonString(o["prepend_scheme"]) ?? "always"
            if o["prepend_scheme"] == nil, o["add_prefix_space"] != nil {
                scheme = jsonBool(o["add_prefix_space"], true) ? "always" : "never"
            }
            self = .metaspace(
                replacement: jsonString(o["replacement"]) ?? "\u{2581}", prependScheme: scheme,
                split: jsonBool(o["split"], true))
        case "Digits": self = .digits(individual: jsonBool(o["individual_digits"], false))
        case "WhitespaceSplit": self = .whitespaceSplit
        case let t: throw TokenizerError("unsupported pre-tokenizer \(t ?? "nil")")
        }
    }

    /// Splits each piece further (and rewrites it, for byte-level and metaspace). `first` marks the
    /// first segment of the input (Metaspace's `prepend_scheme: first`).
    func apply(_ pieces: [String], first: Bool) -> [String] {
        switch self {
        case .sequence(let ps): return ps.reduce(pieces) { $1.apply($0, first: first) }
        case .byteLevel(let addPrefix, let useRegex):
            return pieces.flatMap { p -> [String] in
                let s = addPrefix && p.unicodeScalars.first != " " ? " " + p : p
                let parts =
                    useRegex
                    ? splitPieces(Substring(s), .builtin(.gpt2), behavior: "Isolated", invert: false)
                    : [Substring(s)]
                return parts.map { ByteLevelAlphabet.encode($0) }
            }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap {
                splitPieces(Substring($0), pattern, behavior: behavior, invert: invert).map(String.init)
            }
        case .metaspace(let rep, let scheme, let doSplit):
            return pieces.flatMap { p -> [String] in
                var s = replacingScalars(" ", in: p, with: rep)
                if (scheme == "always" || (scheme == "first" && first))
                    && !s.unicodeScalars.starts(with: rep.unicodeScalars)
                {
                    s = rep + s
                }
                guard doSplit else { return [s] }
                return splitPieces(Substring(s), .literal(rep), behavior: "MergedWithNext", invert: false)
                    .map(String.init)
            }
        case .digits(let individual):
            let re = try! NSRegularExpression(pattern: individual ? #"\p{Nd}"# : #"\p{Nd}+"#)
            return pieces.flatMap {
                splitPieces(Substring($0), .regex(re), behavior: "Isolated", invert: false).map(String.init)
            }
        case .whitespaceSplit:
            return pieces.flatMap { $0.split(whereSeparator: { $0.isWhitespace }).map(String.init) }
        }
    }
}

/// HF's `split` with a `SplitDelimiterBehavior`.
func splitPieces(_ s: Substring, _ pattern: Pattern, behavior: String, invert: Bool) -> [Substring] {
    let ms = pattern.matches(in: s)
    // (range, isMatch) covering s.
    var spans: [(Range<String.Index>, Bool)] = []
    var last = s.startIndex
    for m in ms {
        if last < m.lowerBound { spans.append((last..<m.lowerBound, invert)) }
        spans.append((m, !invert))
        last = m.upperBound
    }
    if last < s.endIndex { spans.append((last..<s.endIndex, invert)) }
    var out: [Substring] = []
    switch behavior {
    case "Removed": out = spans.filter { !$0.1 }.map { s[$0.0] }
    case "MergedWithPrevious":
        var pending: Range<String.Index>? = nil
        for (r, isDelim) in spans {
            if isDelim, let p = pending {
                out.append(s[p.lowerBound..<r.upperBound]); pending = nil
            } else if isDelim {
                out.append(s[r])
            } else {
                if let p = pending { out.append(s[p]) }; pending = r
            }
        }
        if let p = pending { out.append(s[p]) }
    case "MergedWithNext":
        var pending: Range<String.Index>? = nil
        for (r, isDelim) in spans {
            if isDelim {
                if let p = pending { out.append(s[p]) }; pending = r
            } else if let p = pending {
                out.append(s[p.lowerBound..<r.upperBound]); pending = nil
            } else {
                out.append(s[r])
            }
        }
        if let p = pending { out.append(s[p]) }
    default: out = spans.map { s[$0.0] }
    }
    return out.filter { !$0.isEmpty }
}

// MARK: - Decoders

indirect enum TokenDecoder {
    case sequence([TokenDecoder])
    case byteLevel
    case replace(Pattern, String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: String, prependScheme: String)

    init(_ o: JSONObject) throws {
        switch jsonString(o["type"]) {
        case "Sequence": self = .sequence(try ((o["decoders"] as? [JSONObject]) ?? []).map(TokenDecoder.init))
        case "ByteLevel": self = .byteLevel
        case "Replace":
            self = .replace(
                try Pattern(o["pattern"], stage: "Replace decoder"), jsonString(o["content"]) ?? "")
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            self = .strip(
                content: (jsonString(o["content"]) ?? " ").unicodeScalars.first ?? " ",
                start: jsonInt(o["start"]) ?? 0, stop: jsonInt(o["stop"]) ?? 0)
        case "Metaspace":
            var scheme = jsonString(o["prepend_scheme"]) ?? "always"
            if o["prepend_scheme"] == nil, o["add_prefix_space"] != nil {
                scheme = jsonBool(o["add_prefix_space"], true) ? "always" : "never"
            }
            self = .metaspace(replacement: jsonString(o["replacement"]) ?? "\u{2581}", prependScheme: scheme)
        case let t: throw TokenizerError("unsupported decoder \(t ?? "nil")")
        }
    }

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let ds): return ds.reduce(tokens) { $1.apply($0) }
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                var tb: [UInt8] = []
                var ok = true
                for sc in t.unicodeScalars {
                    guard let b = ByteLevelAlphabet.scalarToByte[sc.value] else { ok = false; break }
                    tb.append(b)
                }
                bytes += ok ? tb : Array(t.utf8)
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let p, let c): return tokens.map { replacing(p, in: $0, with: c) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validatingUTF8Bytes: pending) {
                    out.append(s)
                } else {
                    out += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending = []
            }
            for t in tokens {
                if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"),
                    let b = UInt8(t.dropFirst(3).prefix(2), radix: 16)
                {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse: return [tokens.joined()]
        case .strip(let c, let start, let stop):
            return tokens.map { t in
                let chars = Array(t.unicodeScalars)
                var lo = 0
                while lo < min(start, chars.count), chars[lo] == c { lo += 1 }
                var hi = chars.count
                var k = 0
                while k < stop, hi > lo, chars[hi - 1] == c { hi -= 1; k += 1 }
                var v = String.UnicodeScalarView()
                v.append(contentsOf: chars[lo..<hi])
                return String(v)
            }
        case .metaspace(let rep, let scheme):
            return tokens.enumerated().map { i, t in
                var s = replacingScalars(rep, in: t, with: " ")
                if i == 0, scheme != "never", s.unicodeScalars.first == " " { s.unicodeScalars.removeFirst() }
                return s
            }
        }
    }
}

extension String {
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var it = bytes.makeIterator()
        var utf8 = UTF8()
        var scalars = String.UnicodeScalarView()
        loop: while true {
            switch utf8.decode(&it) {
            case .scalarValue(let s): scalars.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(scalars)
    }
}

// MARK: - Post-processors

/// `TemplateProcessing` (special tokens around the sequence), or nothing.
struct PostProcessor {
    /// Items of the single-sequence template: a special token's ids, or nil for the sequence.
    var single: [[Int]?] = [nil]

    init() {}

    init(_ o: JSONObject?) throws {
        guard let o else { return }
        switch jsonString(o["type"]) {
        case "TemplateProcessing":
            let specials = (o["special_tokens"] as? JSONObject) ?? [:]
            single = try ((o["single"] as? [JSONObject]) ?? []).map { item -> [Int]? in
                if item["Sequence"] != nil { return nil }
                guard let sp = item["SpecialToken"] as? JSONObject, let id = jsonString(sp["id"]),
                    let entry = specials[id] as? JSONObject, let ids = entry["ids"] as? [Any]
                else { throw TokenizerError("TemplateProcessing: bad item \(item)") }
                return ids.compactMap(jsonInt)
            }
        case "Sequence":
            var combined = PostProcessor()
            for p in (o["processors"] as? [JSONObject]) ?? [] {
                let pp = try PostProcessor(p)
                if pp.single.count > 1 { combined = pp }
            }
            self = combined
        case "ByteLevel": break
        case let t: throw TokenizerError("unsupported post-processor \(t ?? "nil")")
        }
    }

    func apply(_ ids: [Int]) -> [Int] {
        single.flatMap { $0 ?? ids }
    }
}
