import _CHDF5
import Foundation
import Tensor
import TensorFiles

/// Names and versions of Sightline's file formats.
public enum CheckpointFormat {
    /// The Sightline release written into files (`sightline_version`).
    public static let sightlineVersion = "0.1.0"
    /// Root attribute `format` of a weights file.
    public static let weights = "sightline-weights"
    /// Root attribute `format` of a training checkpoint.
    public static let trainingCheckpoint = "sightline-checkpoint"
    /// Root attribute `format_version` written by this release; files with a larger one are refused.
    public static let version = 1
    /// Root attributes every Sightline file has (others may not be set through `attributes:`).
    public static let reservedAttributes: Set<String> = [
        "format", "format_version", "sightline_version", "config",
    ]
}

/// Sightline's HDF5 weights file: one dataset per parameter at the root, named by its key (dotted HF
/// names such as `vision_model.encoder.layers.0.self_attn.q_proj.weight`), in the order given, and the
/// root attributes `format` (`"sightline-weights"`), `format_version` (integer), `config` (JSON text)
/// and `sightline_version`. Values are float32 unless float16 or bfloat16 is asked for; bfloat16 is
/// stored as 16-bit unsigned integers with the dataset attribute `dtype = "bfloat16"`.
///
/// In Python: `f = h5py.File(path, "r"); weights = {k: f[k][()] for k in f}`.
/// See docs/checkpoint-format.md.
public enum WeightsFile {
    /// Writes `tensors` to `path` atomically (a temporary file in the same directory, synced, then
    /// renamed over `path`): a failed write leaves any existing `path` untouched.
    /// - Parameters:
    ///   - dtype: the stored element type of every tensor.
    ///   - config: JSON text stored as the `config` attribute (the model configuration).
    ///   - attributes: extra string attributes for the root (not the reserved names).
    /// - Throws: `TensorFileError` naming the file and the tensor.
    public static func write(
        _ tensors: NamedTensors, to path: String, dtype: WeightDType = .float32, config: String = "{}",
        attributes: [String: String] = [:]
    ) throws {
        do { _ = try JSONValue.parse(Array(config.utf8)) } catch {
            throw TensorFileError(file: path, "config is not valid JSON: \(error)")
        }
        if let bad = attributes.keys.first(where: { CheckpointFormat.reservedAttributes.contains($0) }) {
            throw TensorFileError(file: path, "attribute '\(bad)' is reserved")
        }
        try DurableFile.write(to: path) { tmp in
            try H5.run {
                let file = try H5IO.createFile(tmp, reportAs: path)
                try writeRootAttributes(file, format: CheckpointFormat.weights, config: config, file: path)
                for (k, v) in attributes.sorted(by: { $0.key < $1.key }) {
                    try H5IO.writeAttribute(file, k, string: v, file: path)
                }
                for (name, t) in tensors { try H5IO.writeTensor(file, name, t, dtype: dtype, file: path) }
                try H5IO.closeAndSeal(file, tmp, reportAs: path)
            }
        }
    }

    /// Opens a weights file (or the `model/` group of a training checkpoint) for reading.
    public static func open(_ path: String) throws -> HDF5WeightsFile { try HDF5WeightsFile(path: path) }

    static func writeRootAttributes(_ loc: H5Handle, format: String, config: String?, file: String) throws {
        try H5IO.writeAttribute(loc, "format", string: format, file: file)
        try H5IO.writeAttribute(loc, "format_version", int: Int64(CheckpointFormat.version), file: file)
        if let config { try H5IO.writeAttribute(loc, "config", string: config, file: file) }
        try H5IO.writeAttribute(
            loc, "sightline_version", string: CheckpointFormat.sightlineVersion, file: file)
    }
}

/// An HDF5 file of tensors opened for reading: a Sightline weights file, the `model/` group of a
/// training checkpoint, or any HDF5 file with numeric datasets at its root (written by h5py, say).
public final class HDF5WeightsFile: TensorSource {
    public let path: String
    /// The group the tensors are read from: `/`, or `model` in a training checkpoint.
    public let group: String
    /// Root attributes by name.
    public let attributes: [(name: String, value: AttributeValue)]
    public let tensorInfos: [TensorInfo]
    private let file: H5Handle
    private let location: H5Handle
    private let bytes: Int

    /// Opens `path`; tensors are read from `group`, or by default from the root (weights files and
    /// foreign files) or `model` (training checkpoints).
    /// - Throws: `TensorFileError` when the file is not HDF5, is from a newer format version, or is damaged.
    public init(path: String, group: String? = nil) throws {
        self.path = path
        bytes = fileSize(path)
        (file, location, self.group, attributes, tensorInfos) = try H5.run {
            let file = try H5IO.openFile(path)
            let attrs = try H5IO.readAttributes(file, file: path)
            let format = attrs.first { $0.0 == "format" }?.1
            if case .int(let v)? = attrs.first(where: { $0.0 == "format_version" })?.1,
                v > CheckpointFormat.version,
                case .string(let f)? = format, f.hasPrefix("sightline")
            {
                throw TensorFileError(
                    file: path,
                    "format_version \(v) is newer than this Sightline reads (\(CheckpointFormat.version))")
            }
            var groupName = group ?? "/"
            if group == nil, case .string(CheckpointFormat.trainingCheckpoint)? = format {
                groupName = "model"
            }
            let loc = try H5IO.openGroup(file, groupName, file: path)
            let infos = try H5IO.datasetInfos(loc, file: path)
            return (file, loc, groupName, attrs.map { (name: $0.0, value: $0.1) }, infos)
        }
    }

    /// File-level metadata: the root attributes as text.
    public var metadata: [String: String] {
        Dictionary(attributes.map { ($0.name, $0.value.description) }, uniquingKeysWith: { a, _ in a })
    }

    /// The root attribute `name`.
    public func attribute(_ name: String) -> AttributeValue? { attributes.first { $0.name == name }?.value }

    /// `format` (`"sightline-weights"` for Sightline weights files).
    public var format: String? {
        if case .string(let s)? = attribute("format") { return s } else { return nil }
    }
    /// `config`: the model configuration as JSON text.
    public var config: String? {
        if case .string(let s)? = attribute("config") { return s } else { return nil }
    }

    public func readTensor(_ name: String) throws -> Tensor {
        guard tensorInfos.contains(where: { $0.name == name }) else {
            throw TensorFileError(file: path, tensor: name, "no such dataset in \(group)")
        }
        return try H5.run { try H5IO.readTensor(location, name, file: path, fileBytes: bytes).0 }
    }
}
