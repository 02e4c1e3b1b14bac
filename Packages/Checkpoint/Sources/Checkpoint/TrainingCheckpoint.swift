import _CHDF5
import Foundation
import Tensor
import TensorFiles

/// Named JSON documents (any `Codable` value): RNG states, data cursors, configurations, metric
/// histories. Stored as JSON text, so a checkpoint needs no knowledge of the types.
///
/// ```swift
/// var docs = JSONDocuments()
/// try docs.set(RandomGenerator(seed: 7), for: "rng")
/// let g = try docs.decode(RandomGenerator.self, "rng")
/// ```
public struct JSONDocuments: Equatable, Sendable {
    /// JSON text by name.
    public private(set) var texts: [String: String] = [:]

    public init() {}

    /// Names, sorted.
    public var names: [String] { texts.keys.sorted() }

    /// The JSON text of `name`.
    public subscript(name: String) -> String? { texts[name] }

    /// Stores `value` encoded as JSON (keys sorted) under `name`.
    public mutating func set<T: Encodable>(_ value: T, for name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        texts[name] = String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Stores JSON `text` under `name`.
    /// - Throws: `JSONParseError` when `text` is not JSON.
    public mutating func setJSON(_ text: String, for name: String) throws {
        _ = try JSONValue.parse(Array(text.utf8))
        texts[name] = text
    }

    /// Removes `name`.
    public mutating func remove(_ name: String) { texts[name] = nil }

    /// The document `name` decoded as `T`, or nil when there is none.
    public func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T? {
        guard let t = texts[name] else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(t.utf8))
    }
}

/// Optimizer state: the step count, per-parameter tensors keyed by the model's parameter names
/// (`exp_avg`, `exp_avg_sq` for AdamW) and JSON documents (hyperparameters).
public struct OptimizerState {
    /// Updates applied so far.
    public var step: Int
    /// State tensors by parameter name, then by state name.
    public var parameters: [String: NamedTensors]
    public var documents: JSONDocuments

    public init(
        step: Int = 0, parameters: [String: NamedTensors] = [:], documents: JSONDocuments = JSONDocuments()
    ) {
        self.step = step
        self.parameters = parameters
        self.documents = documents
    }
}

/// Trainer state: the global step and JSON documents, by convention under the names in `Key`.
public struct TrainerState: Sendable {
    /// Conventional document names.
    public enum Key {
        public static let dataCursor = "data_cursor"
        public static let rngStates = "rng_states"
        public static let config = "config"
        public static let metricHistory = "metric_history"
    }

    public var globalStep: Int
    public var documents: JSONDocuments

    public init(globalStep: Int = 0, documents: JSONDocuments = JSONDocuments()) {
        self.globalStep = globalStep
        self.documents = documents
    }
}

/// Everything needed to resume training, built from plain named tensors and JSON documents (so that
/// the packages that produce them need not know about HDF5).
///
/// File layout (HDF5):
/// ```
/// /                 attributes format = "sightline-checkpoint", format_version, sightline_version
/// /model/<name>     one dataset per parameter (float32), as in a weights file
/// /optimizer        attribute step; one attribute per document (JSON text)
/// /optimizer/<name>/<state>   per-parameter state tensors (float32)
/// /trainer          attribute global_step; one attribute per document (JSON text)
/// ```
public struct TrainingCheckpoint {
    public var model: NamedTensors
    public var optimizer: OptimizerState
    public var trainer: TrainerState

    public init(
        model: NamedTensors, optimizer: OptimizerState = OptimizerState(),
        trainer: TrainerState = TrainerState()
    ) {
        self.model = model
        self.optimizer = optimizer
        self.trainer = trainer
    }

    /// Writes the checkpoint to `path` atomically (temporary file, fsync, rename, directory fsync).
    /// Use `CheckpointDirectory` for step-numbered checkpoints with a `latest` pointer.
    public func write(to path: String) throws {
        try DurableFile.write(to: path) { tmp in try writeHDF5(tmp, reportAs: path) }
    }

    /// Writes the HDF5 file at `tmp` (not atomic); errors name `reportAs`.
    func writeHDF5(_ tmp: String, reportAs path: String) throws {
        for name in optimizer.documents.names + trainer.documents.names
        where name == "step" || name == "global_step" {
            throw TensorFileError(file: path, "document name '\(name)' is reserved")
        }
        try H5.run {
            let file = try H5IO.createFile(tmp, reportAs: path)
            try WeightsFile.writeRootAttributes(
                file, format: CheckpointFormat.trainingCheckpoint, config: nil, file: path)
            let model = try H5IO.createGroup(file, "model", file: path)
            for (name, t) in self.model { try H5IO.writeTensor(model, name, t, dtype: .float32, file: path) }
            guard model.close() >= 0 else { throw H5.error(path, "model", "cannot close group") }
            let opt = try H5IO.createGroup(file, "optimizer", file: path)
            try H5IO.writeAttribute(opt, "step", int: Int64(optimizer.step), file: path)
            for name in optimizer.documents.names {
                try H5IO.writeAttribute(opt, name, string: optimizer.documents[name]!, file: path)
            }
            for pname in optimizer.parameters.keys.sorted() {
                let g = try H5IO.createGroup(opt, pname, file: path)
                for (sname, t) in optimizer.parameters[pname]! {
                    do {
                        try H5IO.writeTensor(g, sname, t, dtype: .float32, file: path)
                    } catch var e as TensorFileError {
                        e.tensor = "optimizer/\(pname)/\(sname)"
                        throw e
                    }
                }
                guard g.close() >= 0 else { throw H5.error(path, "optimizer/\(pname)", "cannot close group") }
            }
            guard opt.close() >= 0 else { throw H5.error(path, "optimizer", "cannot close group") }
            let tr = try H5IO.createGroup(file, "trainer", file: path)
            try H5IO.writeAttribute(tr, "global_step", int: Int64(trainer.globalStep), file: path)
            for name in trainer.documents.names {
                try H5IO.writeAttribute(tr, name, string: trainer.documents[name]!, file: path)
            }
            guard tr.close() >= 0 else { throw H5.error(path, "trainer", "cannot close group") }
            try H5IO.closeAndSeal(file, tmp, reportAs: path)
        }
    }

    /// Reads a training checkpoint, after verifying its checksum (`FileChecksum`): a damaged file is
    /// refused before libhdf5 parses it.
    /// - Parameter requireChecksum: refuse a file without a checksum block (the default; files written
    ///   by this release always have one).
    /// - Throws: `TensorFileError` naming the file and the dataset for a checksum mismatch, a missing
    ///   group, a damaged dataset, or a file that is not a training checkpoint.
    public static func read(from path: String, requireChecksum: Bool = true) throws -> TrainingCheckpoint {
        let bytes = fileSize(path)
        return try H5.run {
            let file = try H5IO.openFile(path, requireChecksum: requireChecksum)
            let format = try H5IO.readAttribute(file, "format", file: path)
            guard case .string(CheckpointFormat.trainingCheckpoint)? = format else {
                throw TensorFileError(
                    file: path,
                    "not a Sightline training checkpoint (format is \(format?.description ?? "missing"))")
            }
            if case .int(let v)? = try H5IO.readAttribute(file, "format_version", file: path),
                v > CheckpointFormat.version
            {
                throw TensorFileError(
                    file: path,
                    "format_version \(v) is newer than this Sightline reads (\(CheckpointFormat.version))")
            }
            func tensors(_ loc: H5Handle, prefix: String) throws -> NamedTensors {
                var out = NamedTensors()
                for c in try H5IO.children(loc, file: path) where c.kind == .dataset {
                    do {
                        out[c.name] = try H5IO.readTensor(loc, c.name, file: path, fileBytes: bytes).0
                    } catch var e as TensorFileError {
                        e.tensor = prefix + c.name
                        throw e
                    }
                }
                return out
            }
            func documents(_ loc: H5Handle, group: String, skipping reserved: String) throws -> JSONDocuments
            {
                var docs = JSONDocuments()
                for (name, value) in try H5IO.readAttributes(loc, file: path, tensor: group)
                where name != reserved {
                    guard case .string(let text) = value else {
                        throw TensorFileError(
                            file: path, tensor: group, "attribute '\(name)' is not JSON text")
                    }
                    do { try docs.setJSON(text, for: name) } catch {
                        throw TensorFileError(
                            file: path, tensor: group, "attribute '\(name)' is not valid JSON: \(error)")
                    }
                }
                return docs
            }
            func intAttribute(_ loc: H5Handle, _ name: String, group: String) throws -> Int {
                guard case .int(let v)? = try H5IO.readAttribute(loc, name, file: path, tensor: group) else {
                    throw TensorFileError(file: path, tensor: group, "missing integer attribute '\(name)'")
                }
                return Int(v)
            }
            let model = try tensors(try H5IO.openGroup(file, "model", file: path), prefix: "model/")
            let optGroup = try H5IO.openGroup(file, "optimizer", file: path)
            var optimizer = OptimizerState(step: try intAttribute(optGroup, "step", group: "optimizer"))
            optimizer.documents = try documents(optGroup, group: "optimizer", skipping: "step")
            for c in try H5IO.children(optGroup, file: path) where c.kind == .group {
                let g = try H5IO.openGroup(optGroup, c.name, file: path)
                optimizer.parameters[c.name] = try tensors(g, prefix: "optimizer/\(c.name)/")
            }
            let trGroup = try H5IO.openGroup(file, "trainer", file: path)
            let trainer = TrainerState(
                globalStep: try intAttribute(trGroup, "global_step", group: "trainer"),
                documents: try documents(trGroup, group: "trainer", skipping: "global_step"))
            withExtendedLifetime((file, optGroup, trGroup)) {}
            return TrainingCheckpoint(model: model, optimizer: optimizer, trainer: trainer)
        }
    }
}
