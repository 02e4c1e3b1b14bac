import ArgumentParser
import Checkpoint
import TensorFiles
import Training

/// Lists the tensors of a weights file: names, shapes, stored types, parameter counts and the
/// file's attributes or metadata.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List the tensors of an HDF5 weights file, a safetensors file or directory, or a PyTorch .bin/.pt."
    )

    @Argument(help: "The file (or sharded safetensors directory).")
    var file: String

    @Flag(name: .long, help: "Print only the summary, not every tensor.")
    var summary = false

    func run() throws {
        let kind = try tensorFileKind(file)
        let source = try TensorFileProbe.open(file, probe: TensorFileProbe.currentExecutable)
        print("\(file): \(kind.rawValue)")
        if let h5 = source as? HDF5WeightsFile {
            if h5.group != "/" { print("  tensors from group: \(h5.group)") }
            for (name, value) in h5.attributes { print("  @\(name) = \(abbreviate(value.description))") }
            if let whole = try WholeModelSummary(h5) { whole.lines.forEach { print("  " + $0) } }
        } else {
            for (k, v) in source.metadata.sorted(by: { $0.key < $1.key }) {
                print("  \(k) = \(abbreviate(v))")
            }
        }
        if let torch = source as? TorchStateDict, !torch.skippedKeys.isEmpty {
            print("  non-tensor entries: \(torch.skippedKeys.joined(separator: ", "))")
        }
        let infos = source.tensorInfos
        if !summary {
            let width = min(80, infos.map(\.name.count).max() ?? 0)
            for i in infos {
                let shape = "[" + i.shape.map(String.init).joined(separator: ", ") + "]"
                print(
                    "  " + i.name.padding(toLength: max(width, i.name.count), withPad: " ", startingAt: 0)
                        + "  " + shape.padding(toLength: 20, withPad: " ", startingAt: 0)
                        + "  " + i.dtype.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
                        + "  " + grouped(i.elementCount))
            }
        }
        var byType: [StoredDType: Int] = [:]
        for i in infos { byType[i.dtype, default: 0] += i.elementCount }
        let types = byType.sorted { $0.value > $1.value }.map { "\($0.key.rawValue) \(grouped($0.value))" }
        print(
            "\(infos.count) tensors, \(grouped(source.parameterCount)) parameters (\(types.joined(separator: ", ")))"
        )
    }

    func abbreviate(_ s: String) -> String {
        let flat = s.replacingOccurrences(of: "\n", with: " ")
        return flat.count > 200 ? String(flat.prefix(200)) + "... (\(flat.count) characters)" : flat
    }
}

/// 1234567 -> "1,234,567".
func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return out
}
