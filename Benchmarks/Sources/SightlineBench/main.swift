import Foundation
import Tensor

// Usage: sightline-bench [suite ...] [--json FILE] [--repeats N]
// Suites: gemm (default: all). Every rate is the best and median of N timed runs after warm-up;
// ratios compare against a baseline measured in the same run (the machine is shared and noisy).
var args = Array(CommandLine.arguments.dropFirst())
var jsonPath: String?
var repeats = 10
if let i = args.firstIndex(of: "--json"), i + 1 < args.count { jsonPath = args[i + 1]; args.removeSubrange(i...(i + 1)) }
if let i = args.firstIndex(of: "--repeats"), i + 1 < args.count, let n = Int(args[i + 1]) {
    repeats = n
    args.removeSubrange(i...(i + 1))
}
let all = ["gemm"]
let suites = args.isEmpty ? all : args
print("# \(ComputeRuntime.blas())")
let report = Report()
for s in suites {
    switch s {
    case "gemm": gemmSuite(report, sizes: [256, 512, 1024, 2048], repeats: repeats)
    default:
        FileHandle.standardError.write(Data("unknown suite \(s); suites: \(all.joined(separator: ", "))\n".utf8))
        exit(2)
    }
}
if let jsonPath { try report.writeJSON(to: jsonPath) }
