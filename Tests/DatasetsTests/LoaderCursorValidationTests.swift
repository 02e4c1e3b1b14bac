import Datasets
import Foundation
import SightlineTestSupport
import Testing

/// A saved cursor edited (or corrupted) so that an index is out of range: restoring it throws an
/// error naming the value instead of trapping on an array subscript.
@Test func decodedCursorWithOutOfRangeIndicesThrows() throws {
    let files = try writeMixtureSources("cursor-range")
    let first = try makeLoader(files, workers: 0)
    for _ in 0..<3 { _ = try first.next() }
    let saved = try JSONSerialization.jsonObject(with: JSONEncoder().encode(first.cursor)) as! [String: Any]
    first.stop()

    func restoring(_ edit: (inout [String: Any]) -> Void) -> String {
        var json = saved
        edit(&json)
        do {
            let data = try JSONSerialization.data(withJSONObject: json)
            let cursor = try JSONDecoder().decode(LoaderCursor.self, from: data)
            let l = try makeLoader(files, workers: 0, cursor: cursor)
            l.stop()
            return "no error"
        } catch {
            return "\(error)"
        }
    }
    let position = (saved["sources"] as! [[String: Any]])[0]
    let cases: [(String, (inout [String: Any]) -> Void)] = [
        ("carry source 7 is outside 0..<3", { $0["carry"] = ["source": 7, "before": position, "offset": 0] }),
        ("carry source -1 is outside 0..<3", { $0["carry"] = ["source": -1, "before": position, "offset": 0] }),
        ("carry offset -4 is negative", { $0["carry"] = ["source": 0, "before": position, "offset": -4] }),
        ("mixture has 4 weights", {
            var m = $0["mixture"] as! [String: Any]
            m["weights"] = [0.25, 0.25, 0.25, 0.25]
            $0["mixture"] = m
        }),
        ("3 weights and 2 counts", {
            var m = $0["mixture"] as! [String: Any]
            m["counts"] = [1, 1]
            $0["mixture"] = m
        }),
        ("has 2 source positions, the loader 3 sources", {
            $0["sources"] = Array(($0["sources"] as! [[String: Any]]).prefix(2))
        }),
        ("file 9 of 1", {
            var s = $0["sources"] as! [[String: Any]]
            s[1]["file"] = 9
            $0["sources"] = s
        }),
        ("batches -2 is negative", { $0["batches"] = -2 }),
    ]
    for (expected, edit) in cases {
        let m = restoring(edit)
        #expect(m.contains(expected), "expected \"\(expected)\", got \(m)")
    }
    #expect(restoring { _ in } == "no error")
}
