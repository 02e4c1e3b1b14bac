/// VQAv2-style answer normalisation, so that "Two.", "two" and "2" are the same answer.
///
/// The steps, in the order of the VQAv2 evaluation:
/// 1. newlines and tabs become spaces; leading and trailing whitespace is removed;
/// 2. punctuation: each of `; / [ ] " { } ( ) = + \ _ - > < @ ` , ? !` is deleted when the answer has
///    that mark next to a space, or has a comma between two digits anywhere ("1,000"), and otherwise
///    becomes a space ("black-and-white" -> "black and white"); then every period not followed by a
///    digit is deleted (so "2.5" keeps its point and "dog." loses it);
/// 3. lower-casing, splitting on whitespace, number words `none`, `zero` ... `ten` to digits, the
///    articles `a`, `an`, `the` removed;
/// 4. contractions written without their apostrophe get it back ("dont" -> "don't"), using a table of
///    spellings that are not themselves English words (so "well", "ill", "id" stay as they are);
/// 5. the words joined by single spaces.
///
/// Differences from the VQAv2 script, on purpose: both the prediction and every reference are always
/// normalised (the script skips it when all human answers agree); every period is considered (the
/// script's substitution stops after 32); digits are ASCII.
public enum AnswerNormalizer {
    /// Marks handled by step 2 (the period separately).
    public static let punctuation: [Character] = [
        ";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
        "!",
    ]

    /// Number words to digits (step 3).
    public static let numberWords: [String: String] = [
        "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
        "seven": "7", "eight": "8", "nine": "9", "ten": "10",
    ]

    /// Articles removed in step 3.
    public static let articles: Set<String> = ["a", "an", "the"]

    /// Contractions without the apostrophe -> with it (step 4).
    public static let contractions: [String: String] = {
        var table: [String: String] = [:]
        // "n't" forms.
        for stem in [
            "are", "ca", "could", "did", "does", "do", "had", "has", "have", "is", "might", "must", "need",
            "sha", "should", "was", "were", "wo", "would", "ai",
        ] {
            table[stem + "nt"] = stem + "n't"
        }
        table["cant"] = "can't"
        table["aint"] = "ain't"
        for (plain, full) in [
            ("couldve", "could've"), ("shouldve", "should've"), ("wouldve", "would've"),
            ("mightve", "might've"),
            ("mustve", "must've"), ("couldntve", "couldn't've"), ("shouldntve", "shouldn't've"),
            ("wouldntve", "wouldn't've"), ("mightntve", "mightn't've"), ("hadntve", "hadn't've"),
            ("im", "i'm"), ("ive", "i've"), ("youre", "you're"), ("youve", "you've"), ("youll", "you'll"),
            ("youd", "you'd"), ("yall", "y'all"), ("hes", "he's"), ("shes", "she's"), ("itd", "it'd"),
            ("itll", "it'll"), ("weve", "we've"), ("theyre", "they're"), ("theyve", "they've"),
            ("theyll", "they'll"), ("theyd", "they'd"), ("thats", "that's"), ("theres", "there's"),
            ("whats", "what's"), ("whatre", "what're"), ("whatll", "what'll"), ("whatve", "what've"),
            ("whos", "who's"), ("whod", "who'd"), ("wholl", "who'll"), ("whove", "who've"),
            ("wheres", "where's"), ("whered", "where'd"), ("whereve", "where've"), ("whens", "when's"),
            ("whys", "why's"), ("whyre", "why're"), ("whyll", "why'll"), ("hows", "how's"), ("howd", "how'd"),
            ("howll", "how'll"), ("oclock", "o'clock"), ("maam", "ma'am"), ("somebodys", "somebody's"),
            ("someones", "someone's"), ("somethings", "something's"), ("everyones", "everyone's"),
            ("nobodys", "nobody's"),
        ] {
            table[plain] = full
        }
        return table
    }()

    /// The normalised form of an answer (steps 1 to 5).
    public static func normalize(_ answer: String) -> String {
        let trimmed = answer.replacingAll("\n", " ").replacingAll("\t", " ").trimmingWhitespace()
        return wordsStep(punctuationStep(trimmed))
    }

    /// Step 2: punctuation and periods.
    public static func punctuationStep(_ text: String) -> String {
        let chars = Array(text)
        let digitCommaDigit = chars.indices.contains { i in
            i > 0 && i + 1 < chars.count && chars[i] == "," && chars[i - 1].isASCIIDigit
                && chars[i + 1].isASCIIDigit
        }
        var out = chars
        for p in punctuation {
            let nextToSpace = chars.indices.contains { i in
                chars[i] == p
                    && ((i + 1 < chars.count && chars[i + 1] == " ") || (i > 0 && chars[i - 1] == " "))
            }
            let delete = nextToSpace || digitCommaDigit
            out = delete ? out.filter { $0 != p } : out.map { $0 == p ? " " : $0 }
        }
        var result: [Character] = []
        result.reserveCapacity(out.count)
        for (i, c) in out.enumerated() {
            if c == ".", !(i + 1 < out.count && out[i + 1].isASCIIDigit) { continue }
            result.append(c)
        }
        return String(result)
    }

    /// Steps 3 to 5: lower-case words, number words, articles, contractions.
    public static func wordsStep(_ text: String) -> String {
        var words: [String] = []
        for raw in text.lowercased().split(whereSeparator: { $0.isWhitespace }) {
            let word = numberWords[String(raw)] ?? String(raw)
            if articles.contains(word) { continue }
            words.append(contractions[word] ?? word)
        }
        return words.joined(separator: " ")
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isWholeNumber }
}

extension String {
    func replacingAll(_ target: Character, _ replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }

    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
