import Evaluation
import Testing

@Suite struct AnswerNormalizerTests {
    /// Each case applies one rule of the VQAv2 normalisation (see `AnswerNormalizer`).
    @Test(arguments: [
        ("Two.", "2"),  // lower-case, period at the end removed, number word to digit
        ("  red\n", "red"),  // whitespace
        ("The red one", "red 1"),  // article removed, number word
        ("a dog", "dog"), ("an apple", "apple"),
        ("2.5", "2.5"),  // a period before a digit stays
        ("yes!", "yes"),  // "!" not next to a space: replaced by a space, then trimmed by the split
        ("black-and-white", "black and white"),  // "-" between letters becomes a space
        ("left - right", "left right"),  // "-" next to a space is deleted
        ("1,000", "1000"),  // a comma between digits: every listed mark is deleted
        ("dont", "don't"), ("isnt it", "isn't it"), ("cant", "can't"), ("oclock", "o'clock"),
        ("well", "well"), ("ill", "ill"),  // English words are not treated as contractions
        ("none", "0"), ("ten", "10"), ("eleven", "eleven"),
        ("Yes, it is", "yes it is"),  // ", " : the comma is next to a space, deleted
        ("(top) left", "top left"), ("top/left", "top left"),
        ("Mr. Smith's", "mr smith's"),  // apostrophes are kept; periods before letters removed
        ("THE\tEND", "end"),
    ])
    func rule(_ input: String, _ expected: String) {
        #expect(AnswerNormalizer.normalize(input) == expected, "\(input)")
    }

    @Test func equivalentAnswersNormaliseTogether() {
        let forms = ["Two", "two.", "2", " the two ", "TWO!"]
        #expect(Set(forms.map(AnswerNormalizer.normalize)) == ["2"])
    }
}
