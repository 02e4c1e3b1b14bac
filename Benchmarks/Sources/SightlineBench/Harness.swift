import _CMallocCounter
import Dispatch
import Foundation
import Tensor

/// One measured row: a name, the unit of its rate, and the best/median rate over repetitions.
struct Row {
    var suite: String
    var name: String
    var unit: String
    var best: Double
    var median: Double
    /// Best rate divided by the baseline's best in the same run (nil for the baseline itself).
    var ratio: Double?
    var baseline: String?
}

/// Times `body` `repeats` times after `warmup` runs; returns rates `work / seconds`.
func measure(repeats: Int, warmup: Int = 2, work: Double, _ body: () throws -> Void) rethrows -> (
    best: Double, median: Double
) {
    for _ in 0..<warmup { try body() }
    var rates: [Double] = []
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        let dt = max(1, DispatchTime.now().uptimeNanoseconds - t0)
        rates.append(work / (Double(dt) * 1e-9))
    }
    rates.sort()
    return (rates.last!, rates[rates.count / 2])
}

/// Collects rows and prints them as a table and, with `--json FILE`, as JSON.
final class Report {
    var rows: [Row] = []

    func add(
        _ suite: String, _ name: String, unit: String, _ r: (best: Double, median: Double),
        baseline: Row? = nil
    ) -> Row {
        let row = Row(
            suite: suite, name: name, unit: unit, best: r.best, median: r.median,
            ratio: baseline.map { r.best / $0.best }, baseline: baseline?.name)
        rows.append(row)
        let ratio = row.ratio.map { String(format: "  %.2fx of %@", $0, row.baseline!) } ?? ""
        let label =
            suite.padding(toLength: 12, withPad: " ", startingAt: 0)
            + name.padding(toLength: 60, withPad: " ", startingAt: 0)
        print(
            label + String(format: " best %9.2f ", r.best) + unit + String(format: "  median %9.2f", r.median)
                + ratio)
        fflush(stdout)
        return row
    }

    func writeJSON(to path: String) throws {
        let objects: [[String: Any]] = rows.map { r in
            var o: [String: Any] = [
                "suite": r.suite, "name": r.name, "unit": r.unit, "best": r.best, "median": r.median,
            ]
            if let ratio = r.ratio { o["ratio"] = ratio; o["baseline"] = r.baseline! }
            return o
        }
        let data = try JSONSerialization.data(
            withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}

/// malloc-family calls and bytes since process start (counted by the interposer).
func mallocCounters() -> (calls: UInt64, bytes: UInt64) { (sl_malloc_calls(), sl_malloc_bytes()) }
