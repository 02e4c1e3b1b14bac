import Bridges
import Checkpoint
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

/// Replaces every parameter by O(1) random values (norm weights near 1, Linear and conv weights
/// scaled by 1/sqrt(fan-in)), so that a comparison is not dominated by a 0.02-scale initialisation.
func randomizeParameters(_ m: Module, seed: UInt64) {
    var g = RandomGenerator(seed: seed)
    for (name, p) in m.namedParameters() {
        let z = Tensor.normal(p.shape, mean: 0, std: 1, generator: &g)
        if p.shape.count == 1 && name.hasSuffix("weight") {
            p.data = z * 0.1 + 1
        } else if name.hasSuffix("bias") {
            p.data = z * 0.1
        } else if p.shape.count >= 2 && !name.hasPrefix("cls_token") && name != "query" && name != "pos_emb" {
            let fanIn = p.shape.dropFirst().reduce(1, *)
            p.data = z * (1 / Float(fanIn).squareRoot())
        } else {
            p.data = z * 0.5
        }
    }
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

/// Runs `sightline_torch` on an exported connector: builds the module from the file's `config`
/// attribute, loads `weights` with `strict=True` into a float32 module, applies it to the inputs
/// `x0`, `x1`, ... of `inputs` (a weights file) on `grid`, and writes the output as `out` into
/// `output`.
/// - Returns: the report printed on stdout.
func runTorchConnector(weights: String, inputs: String, levels: Int, grid: Grid, output: String) throws
    -> TorchReport
{
    let code = """
        import json, sys, torch
        import sightline_torch as st
        weights, inputs, output = sys.argv[1], sys.argv[2], sys.argv[3]
        levels, grid = int(sys.argv[4]), (int(sys.argv[5]), int(sys.argv[6]))
        state = st.load_weights(weights)
        module = st.build_connector(st.config(weights)).float()
        module.load_state_dict(state, strict=True)
        module.eval()
        x = st.load_weights(inputs)
        with torch.no_grad():
            y = module([x[f"x{i}"] for i in range(levels)], grid=grid)
        st.save_weights({"out": y}, output)
        print(json.dumps({"keys": list(module.state_dict()), "fileKeys": list(state),
                          "dtypes": sorted({str(t.dtype) for t in state.values()})}))
        """
    let run = try Python.run(
        ["-c", code, weights, inputs, output, String(levels), String(grid.height), String(grid.width)],
        timeout: 300, environment: sightlineTorchEnvironment)
    guard run.status == 0, let line = run.stdout.split(separator: "\n").last else {
        throw TestFailure("sightline_torch failed (status \(run.status)):\n\(run.output)")
    }
    return try JSONDecoder().decode(TorchReport.self, from: Data(line.utf8))
}

/// A failure with a message (Python output, a missing file).
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
