import Foundation
import Tensor

// Usage: sightline-bench [suite ...] [--json FILE] [--repeats N]
//        sightline-bench model --config tiny|small|caption|FILE.yaml [--connector NAME[,NAME...]|all]
//                              [--steps N] [--warmup N] [--sgemm N] [--json FILE]
// Suites: gemm, memory, attention, loss, alloc, optim, optim-phase, connectors, language (default: all). Every rate is the best and median of N
// timed runs after warm-up; ratios compare against a baseline measured in the same run (the machine
// is shared and noisy).
var args = Array(CommandLine.arguments.dropFirst())
var jsonPath: String?
var repeats = 10
if let i = args.firstIndex(of: "--json"), i + 1 < args.count {
    jsonPath = args[i + 1]; args.removeSubrange(i...(i + 1))
}
/// Removes `--name VALUE` from `args` and returns VALUE.
func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    defer { args.removeSubrange(i...(i + 1)) }
    return args[i + 1]
}
if args.first == "model" {
    // The training step of the real model (Benchmarks/configs); one process per connector gives
    // each its own peak RSS.
    let config = option("--config") ?? "tiny"
    let connector = option("--connector")
    let steps = Int(option("--steps") ?? "") ?? 10
    let warmup = Int(option("--warmup") ?? "") ?? 3
    // The size of the same-process sgemm baseline (a small one when profiling under callgrind).
    let sgemmSize = Int(option("--sgemm") ?? "") ?? 1024
    let names: [String]? =
        connector == "all"
        ? ((try? BenchModelFile.load(config))?.connectors.map(\.name) ?? [])
        : connector.map { $0.split(separator: ",").map(String.init) }
    print("# \(ComputeRuntime.blas())")
    do {
        let results = try modelSuite(
            config: config, connectors: names, steps: steps, warmup: warmup, sgemmSize: sgemmSize)
        if let jsonPath {
            let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: jsonPath))
        }
    } catch {
        FileHandle.standardError.write(Data("sightline-bench model: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
if let i = args.firstIndex(of: "--repeats"), i + 1 < args.count, let n = Int(args[i + 1]) {
    repeats = n
    args.removeSubrange(i...(i + 1))
}
let all = ["gemm", "memory", "attention", "loss", "alloc", "optim", "optim-phase", "connectors", "language", "datasets"]
let suites = args.isEmpty ? all : args
for s in suites where !all.contains(s) {
    FileHandle.standardError.write(Data("unknown suite \(s); suites: \(all.joined(separator: ", "))\n".utf8))
    exit(2)
}
print("# \(ComputeRuntime.blas())")
let report = Report()
var peak: Row?
if suites.contains("gemm") || suites.contains("attention") {
    _ = try gemmSuite(
        report, sizes: suites.contains("gemm") ? [256, 512, 1024, 2048] : [2048], repeats: repeats)
    peak = report.rows.last { $0.name.hasPrefix("cblas_sgemm") }
}
if suites.contains("memory") { try memorySuite(report, elements: 1 << 24, repeats: repeats) }
if suites.contains("attention") { try attentionSuite(report, peak: peak!, repeats: max(3, repeats / 3)) }
if suites.contains("loss") { try crossEntropySuite(report, repeats: max(3, repeats / 2)) }
if suites.contains("alloc") { try allocationSuite(report, steps: 20) }
if suites.contains("optim") { try optimizerSuite(report, repeats: max(3, repeats / 2)) }
if suites.contains("optim-phase") { try optimizerPhaseSuite(report, repeats: max(3, repeats / 2)) }
if suites.contains("connectors") { try connectorSuite(report, repeats: max(3, repeats / 2)) }
if suites.contains("language") { try languageSuite(report, repeats: max(3, repeats / 3)) }
if suites.contains("datasets") { try datasetsSuite(report, repeats: max(3, repeats / 3)) }
if let jsonPath { try report.writeJSON(to: jsonPath) }
