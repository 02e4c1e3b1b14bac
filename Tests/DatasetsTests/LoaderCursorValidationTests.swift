import Datasets
import Foundation
import SightlineTestSupport
import Testing

/// A saved cursor edited (or corrupted) so that an index is out of range, then encoded and decoded as
/// a checkpoint would be: restoring it throws an error naming the value instead of trapping on an
/// array subscript.
@Test func decodedCursorWithOutOfRangeIndicesThrows() throws {
    let files = try writeMixtureSources("cursor-range")
    let first = try makeLoader(files, workers: 0)
    for _ in 0..<3 { _ = try first.next() }
    let saved = first.cursor
    first.stop()

    func restoring(_ edit: (inout LoaderCursor) -> Void) -> String {
        var cursor = saved
        edit(&cursor)
        do {
            let decoded = try JSONDecoder().decode(LoaderCursor.self, from: JSONEncoder().encode(cursor))
            let l = try makeLoader(files, workers: 0, cursor: decoded)
            l.stop()
            return "no error"
        } catch {
            return "\(error)"
        }
    }
    let position = saved.sources[0]
    let cases: [(String, (inout LoaderCursor) -> Void)] = [
        ("carry source 7 is outside 0..<3", { $0.carry = .init(source: 7, before: position, offset: 0) }),
        ("carry source -1 is outside 0..<3", { $0.carry = .init(source: -1, before: position, offset: 0) }),
        ("carry offset -4 is negative", { $0.carry = .init(source: 0, before: position, offset: -4) }),
        ("mixture has 4 weights and 3 counts", { $0.mixture.weights = [0.25, 0.25, 0.25, 0.25] }),
        ("has 2 source positions, the loader 3 sources", { $0.sources = Array($0.sources.prefix(2)) }),
        ("file 9 of 1", { $0.sources[1].file = 9 }),
        ("source 2 position has a negative index", { $0.sources[2].record = -1 }),
        ("batches -2 is negative", { $0.batches = -2 }),
    ]
    for (expected, edit) in cases {
        let m = restoring(edit)
        #expect(m.contains(expected), "expected \"\(expected)\", got \(m)")
    }
    #expect(restoring { _ in } == "no error")
}
