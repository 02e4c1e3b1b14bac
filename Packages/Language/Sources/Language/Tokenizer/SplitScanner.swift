import Foundation

/// The two pre-tokenizer regexes byte-level BPE tokenizers use, matched by a hand-written scanner
/// that gives the same pieces as the regex (tested against it) at a fraction of the cost.
public enum BuiltinSplitPattern: String, CaseIterable, Sendable {
    /// GPT-2 (`ByteLevel` with `use_regex`):
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// Llama 3 / tiktoken cl100k-style (`Split` with `Isolated`).
    case llama3 =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The pattern, compiled (the slow reference).
    public var regex: NSRegularExpression { try! NSRegularExpression(pattern: rawValue) }

    /// Pieces of `text` (the matches, and any unmatched gaps, in order) by the scanner.
    public func split(_ text: String) -> [String] {
        let s = Substring(text)
        return matches(in: s).map { String(s[$0]) }
    }

    /// Pieces of `text` by `NSRegularExpression` (the reference the scanner is tested against).
    public func regexSplit(_ text: String) -> [String] {
        splitPieces(Substring(text), .regex(regex), behavior: "Isolated", invert: false).map(String.init)
    }

    private enum Class: UInt8 { case letter, number, space, newline, other }

    @inline(__always) private static func cls(_ c: Unicode.Scalar) -> Class {
        let v = c.value
        if v < 128 {
            switch v {
            case 0x0A, 0x0D: return .newline
            case 0x09, 0x0B, 0x0C, 0x20: return .space
            case 0x30...0x39: return .number
            case 0x41...0x5A, 0x61...0x7A: return .letter
            default: return .other
            }
        }
        let p = c.properties
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return p.isWhitespace ? .space : .other
        }
    }

    /// Match ranges covering `s` (every scalar belongs to one piece).
    func matches(in s: Substring) -> [Range<String.Index>] {
        let view = s.unicodeScalars
        var idx: [String.Index] = []
        var sc: [Unicode.Scalar] = []
        idx.reserveCapacity(view.count + 1)
        for i in view.indices { idx.append(i); sc.append(view[i]) }
        idx.append(s.endIndex)
        let n = sc.count
        var cl = [Class](repeating: .other, count: n)
        for i in 0..<n { cl[i] = Self.cls(sc[i]) }
        func isSpace(_ i: Int) -> Bool { cl[i] == .space || cl[i] == .newline }
        var out: [Range<String.Index>] = []
        var i = 0
        let llama = self == .llama3
        while i < n {
            let end = llama ? nextLlama3(i, sc, cl, isSpace) : nextGPT2(i, sc, cl, isSpace)
            out.append(idx[i]..<idx[end])
            i = end
        }
        return out
    }

    private func contraction(_ i: Int, _ sc: [Unicode.Scalar], caseInsensitive: Bool) -> Int? {
        guard sc[i] == "'", i + 1 < sc.count else { return nil }
        func low(_ c: Unicode.Scalar) -> Unicode.Scalar {
            caseInsensitive && c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c
        }
        let a = low(sc[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
        if i + 2 < sc.count {
            let b = low(sc[i + 2])
            if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
        }
        return nil
    }

    private func whitespace(_ i: Int, _ n: Int, _ isSpace: (Int) -> Bool) -> Int {
        var k = i
        while k < n && isSpace(k) { k += 1 }
        // \s+(?!\S): leave the last space for the next piece when a non-space follows.
        if k < n && k - 1 > i { return k - 1 }
        return k
    }

    private func nextGPT2(_ i: Int, _ sc: [Unicode.Scalar], _ cl: [Class], _ isSpace: (Int) -> Bool) -> Int {
        let n = sc.count
        if let e = contraction(i, sc, caseInsensitive: false) { return e }
        let j = (sc[i] == " " && i + 1 < n) ? i + 1 : i
        for start in (j == i ? [i] : [j, i]) {
            let c = cl[start]
            var k = start
            switch c {
            case .letter: while k < n && cl[k] == .letter { k += 1 }
            case .number: while k < n && cl[k] == .number { k += 1 }
            case .other: while k < n && cl[k] == .other { k += 1 }
            default: continue
            }
            return k
        }
        return whitespace(i, n, isSpace)
    }

    private func nextLlama3(_ i: Int, _ sc: [Unicode.Scalar], _ cl: [Class], _ isSpace: (Int) -> Bool) -> Int
    {
        let n = sc.count
        if let e = contraction(i, sc, caseInsensitive: true) { return e }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if cl[i] != .newline && cl[i] != .letter && cl[i] != .number && i + 1 < n && cl[i + 1] == .letter {
            var k = i + 1
            while k < n && cl[k] == .letter { k += 1 }
            return k
        }
        if cl[i] == .letter {
            var k = i
            while k < n && cl[k] == .letter { k += 1 }
            return k
        }
        // \p{N}{1,3}
        if cl[i] == .number {
            var k = i
            while k < n && k < i + 3 && cl[k] == .number { k += 1 }
            return k
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        let j = (sc[i] == " " && i + 1 < n && cl[i + 1] == .other) ? i + 1 : i
        if cl[j] == .other {
            var k = j
            while k < n && cl[k] == .other { k += 1 }
            while k < n && cl[k] == .newline { k += 1 }
            return k
        }
        // \s*[\r\n]+ : through the last newline of the whitespace run.
        var k = i
        var lastNewline = -1
        while k < n && isSpace(k) {
            if cl[k] == .newline { lastNewline = k }
            k += 1
        }
        if lastNewline >= 0 {
            var e = lastNewline + 1
            while e < n && cl[e] == .newline { e += 1 }
            return e
        }
        return whitespace(i, n, isSpace)
    }
}
