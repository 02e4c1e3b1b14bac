import Bridges
import Checkpoint
import TensorFiles
import Foundation
import SightlineTestSupport
import Testing

// Shared helpers for the PyTorch interop tests: the repository's `python/` directory (put on
// PYTHONPATH so `sightline_torch` imports without an install), temporary directories, random weights.

/// This file's path at compile time: Tests/InteropTests/Support.swift.
private let supportPath: String = #filePath

/// The repository root.
let repositoryRoot: String = URL(fileURLWithPath: supportPath)
    .deletingLastPathComponent()  // InteropTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent().path

/// The environment that makes `import sightline_torch` work from the source tree.
let sightlineTorchEnvironment = ["PYTHONPATH": repositoryRoot + "/python"]

/// A fresh temporary directory; the caller removes it.
func temporaryDirectory(_ tag: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}


/// The configuration as the JSON text our weights files carry in their `config` attribute.
func configJSON(_ configuration: ConnectorConfiguration) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(configuration), as: UTF8.self)
}

/// What the PyTorch side reported about one connector run.
struct TorchReport: Decodable {
    /// The PyTorch module's `state_dict` keys, in order.
    var keys: [String]
    /// The file tensors' torch dtypes as loaded (e.g. `torch.bfloat16`), sorted, distinct.
    var dtypes: [String]
    /// The tensor names in file order, as `load_weights` returned them.
    var fileKeys: [String]
}

/// One connector run for the PyTorch side: the exported `weights`, the inputs `x0`, `x1`, ... in
/// `inputs` (a weights file) on `grid`, and where to write the output.
struct TorchJob: Encodable {
    var weights: String
    var inputs: String
    var levels: Int
    var grid: [Int]
    var output: String
}

/// Runs `sightline_torch` on exported connectors, all in one Python process (torch imports once):
/// for each job, builds the module from the file's `config` attribute, loads `weights` with
/// `strict=True` into a float32 module, applies it to the inputs and writes the output as `out` into
/// `job.output`.
/// - Returns: one report per job, in order.
func runTorchConnectors(_ jobs: [TorchJob], directory: String) throws -> [TorchReport] {
    let manifest = directory + "/jobs.json"
    try JSONEncoder().encode(jobs).write(to: URL(fileURLWithPath: manifest))
    let code = """
        import json, sys, torch
        import sightline_torch as st
        for job in json.load(open(sys.argv[1])):
            state = st.load_weights(job["weights"])
            module = st.build_connector(st.config(job["weights"])).float()
            module.load_state_dict(state, strict=True)
            module.eval()
            x = st.load_weights(job["inputs"])
            with torch.no_grad():
                y = module([x[f"x{i}"] for i in range(job["levels"])], grid=tuple(job["grid"]))
            st.save_weights({"out": y}, job["output"])
            print(json.dumps({"keys": list(module.state_dict()), "fileKeys": list(state),
                              "dtypes": sorted({str(t.dtype) for t in state.values()})}))
        """
    let run = try Python.run(["-c", code, manifest], timeout: 300, environment: sightlineTorchEnvironment)
    let lines = run.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }
    guard run.status == 0, lines.count == jobs.count else {
        throw TestFailure("sightline_torch failed (status \(run.status)):\n\(run.output)")
    }
    return try lines.map { try JSONDecoder().decode(TorchReport.self, from: Data($0.utf8)) }
}

/// A failure with a message (Python output, a missing file).
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
