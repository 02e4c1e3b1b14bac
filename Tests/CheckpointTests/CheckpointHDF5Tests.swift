import Checkpoint
import Foundation
import Tensor
import TensorFiles
import Testing

@Suite struct CheckpointHDF5Tests {
    @Test(arguments: WeightDType.allCases)
    func weightsFileRoundTripIsBitExact(_ dtype: WeightDType) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = try sampleTensors(seed: 21)
        let path = dir.file("w.h5")
        let config = "{\"hidden_size\": 8, \"name\": \"tiny\"}"
        try WeightsFile.write(
            tensors, to: path, dtype: dtype, config: config, attributes: ["source_file": "x"])
        let f = try WeightsFile.open(path)
        #expect(f.format == "sightline-weights")
        #expect(f.attribute("format_version") == .int(1))
        #expect(f.config == config)
        #expect(f.attribute("sightline_version") == .string(CheckpointFormat.sightlineVersion))
        #expect(f.attribute("source_file") == .string("x"))
        // Names come back in the order written (not alphabetical), with their shapes and type.
        #expect(f.tensorNames == tensors.names)
        #expect(f.tensorInfos.map(\.shape) == tensors.names.map { tensors[$0]!.shape })
        #expect(f.tensorInfos.allSatisfy { $0.dtype == dtype.stored })
        for name in tensors.names {
            let want = tensors[name]!.scalars.map { roundTripped($0, dtype).bitPattern }
            #expect(bits(try f.readTensor(name)) == want, "\(name)")
        }
        // Reading back and writing again in the same type reproduces every value bit for bit.
        let again = dir.file("again.h5")
        try WeightsFile.write(try f.readAll(), to: again, dtype: dtype, config: config)
        expectIdentical(try WeightsFile.open(again).readAll(), try f.readAll())
    }

    @Test func writeErrorsNameTheFileAndTensorAndLeaveTheOldFile() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("w.h5")
        let good: NamedTensors = ["a": Tensor([1, 2, 3])]
        try WeightsFile.write(good, to: path)
        let bad: NamedTensors = ["a": Tensor([9]), "bad/name": Tensor([1])]
        let e = errorText { try WeightsFile.write(bad, to: path) } ?? ""
        #expect(e.contains(path) && e.contains("'bad/name'"), "\(e)")
        #expect(try WeightsFile.open(path).readTensor("a").scalars == [1, 2, 3])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.h5"])  // no temporary left
        #expect(
            errorText { try WeightsFile.write(good, to: path, config: "{not json") }?.contains(
                "config is not valid JSON") == true)
        #expect(
            errorText { try WeightsFile.write(good, to: path, attributes: ["format": "x"]) }?.contains(
                "reserved") == true)
    }

    @Test func readErrorsNameTheFileAndDataset() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let notHDF5 = dir.file("not.h5")
        try "hello".write(toFile: notHDF5, atomically: false, encoding: .utf8)
        let e = errorText { _ = try WeightsFile.open(notHDF5) } ?? ""
        #expect(e.hasPrefix(notHDF5) && e.contains("cannot open as HDF5") && e.contains("signature"), "\(e)")
        let path = dir.file("w.h5")
        try WeightsFile.write(["a": Tensor([1])], to: path)
        let f = try WeightsFile.open(path)
        #expect(
            errorText { _ = try f.readTensor("missing.weight") }
                == "\(path): tensor 'missing.weight': no such dataset in /")
        #expect(
            errorText { _ = try WeightsFile.open(dir.file("absent.h5")) }?.hasPrefix(dir.file("absent.h5"))
                == true)
    }

    /// A training checkpoint opens as a weights source: its `model/` group. (Files from other
    /// writers, float64, float16 and integer datasets from h5py, are covered by the Python test.)
    @Test func checkpointModelGroupOpensAsWeights() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try sampleTensors(seed: 22)
        let path = dir.file("ckpt.h5")
        try TrainingCheckpoint(model: model).write(to: path)
        let f = try WeightsFile.open(path)
        #expect(f.group == "model")
        expectIdentical(try f.readAll(), model)
        #expect(try tensorFileKind(path) == .hdf5)
    }

    @Test func trainingCheckpointRoundTrip() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try sampleTensors(seed: 23)
        var optimizer = OptimizerState(step: 17)
        for name in model.names {
            optimizer.parameters[name] = ["exp_avg": model[name]! * 0.5, "exp_avg_sq": model[name]! * 0.25]
        }
        try optimizer.documents.set(["lr": 1e-4, "beta1": 0.9], for: "hyperparameters")
        var trainer = TrainerState(globalStep: 1234)
        struct Cursor: Codable, Equatable {
            var shard: Int
            var offset: Int
            var epoch: Int
        }
        try trainer.documents.set(Cursor(shard: 3, offset: 99, epoch: 1), for: TrainerState.Key.dataCursor)
        try trainer.documents.set(
            ["data": RandomGenerator(seed: 42, offset: 7), "dropout": RandomGenerator(seed: 1)],
            for: TrainerState.Key.rngStates)
        try trainer.documents.setJSON("{\"model\": \"tiny\", \"layers\": 2}", for: TrainerState.Key.config)
        try trainer.documents.set(
            [["step": 1, "loss": 2.5], ["step": 2, "loss": 2.25]], for: TrainerState.Key.metricHistory)
        let path = dir.file("c.h5")
        try TrainingCheckpoint(model: model, optimizer: optimizer, trainer: trainer).write(to: path)

        let back = try TrainingCheckpoint.read(from: path)
        expectIdentical(back.model, model)
        #expect(back.optimizer.step == 17)
        #expect(Set(back.optimizer.parameters.keys) == Set(model.names))
        for name in model.names {
            expectIdentical(back.optimizer.parameters[name]!, optimizer.parameters[name]!, "\(name)")
        }
        #expect(
            try back.optimizer.documents.decode([String: Double].self, "hyperparameters") == [
                "lr": 1e-4, "beta1": 0.9,
            ])
        #expect(back.trainer.globalStep == 1234)
        #expect(
            try back.trainer.documents.decode(Cursor.self, TrainerState.Key.dataCursor)
                == Cursor(shard: 3, offset: 99, epoch: 1))
        let rng = try back.trainer.documents.decode(
            [String: RandomGenerator].self, TrainerState.Key.rngStates)
        #expect(rng == ["data": RandomGenerator(seed: 42, offset: 7), "dropout": RandomGenerator(seed: 1)])
        #expect(back.trainer.documents[TrainerState.Key.config] == "{\"model\": \"tiny\", \"layers\": 2}")
        #expect(back.trainer.documents == trainer.documents)
        // Not a checkpoint: a weights file.
        let w = dir.file("w.h5")
        try WeightsFile.write(model, to: w)
        #expect(
            errorText { _ = try TrainingCheckpoint.read(from: w) }?.contains(
                "not a Sightline training checkpoint") == true)
    }

    @Test func directoryKeepsLastKAndPointsAtLatest() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let ck = try CheckpointDirectory(dir.file("ck"), keep: 2)
        #expect(try ck.latest() == nil)
        #expect(try ck.loadLatest() == nil)
        for step in [100, 200, 300, 400] {
            try ck.save(
                TrainingCheckpoint(
                    model: ["w": Tensor([Float(step)])], trainer: TrainerState(globalStep: step)), step: step)
        }
        #expect(try ck.savedSteps() == [300, 400])
        #expect(try ck.latest()?.step == 400)
        #expect(try ck.loadLatest()?.model["w"]?.scalars == [400])
        #expect(try ck.load(step: 300).trainer.globalStep == 300)
        let names = try FileManager.default.contentsOfDirectory(atPath: ck.path).sorted()
        #expect(names == ["checkpoint-000000300.h5", "checkpoint-000000400.h5", "latest"])
        #expect(
            try String(contentsOfFile: ck.path + "/latest", encoding: .utf8) == "checkpoint-000000400.h5\n")
    }

    /// A save that fails at any stage leaves `latest` loading the previous checkpoint, and leaves no
    /// temporary file behind.
    @Test(arguments: [CheckpointDirectory.SaveStage.temporaryWritten, .renamed])
    func failedSaveLeavesThePreviousCheckpoint(_ stage: CheckpointDirectory.SaveStage) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let ck = try CheckpointDirectory(dir.file("ck"), keep: 3)
        try ck.save(
            TrainingCheckpoint(model: ["w": Tensor([1])], trainer: TrainerState(globalStep: 1)), step: 1)
        struct Injected: Error {}
        ck.faultInjection = { if $0 == stage { throw Injected() } }
        #expect(throws: Injected.self) {
            try ck.save(
                TrainingCheckpoint(model: ["w": Tensor([2])], trainer: TrainerState(globalStep: 2)), step: 2)
        }
        #expect(try ck.latest()?.step == 1)
        #expect(try ck.loadLatest()?.model["w"]?.scalars == [1])
        let names = try FileManager.default.contentsOfDirectory(atPath: ck.path)
        #expect(!names.contains { $0.contains(".tmp-") }, "\(names)")
        // A save that fails inside the writer (an invalid name) too.
        ck.faultInjection = nil
        #expect(throws: TensorFileError.self) {
            try ck.save(TrainingCheckpoint(model: ["w": Tensor([3]), "x/y": Tensor([3])]), step: 3)
        }
        #expect(try ck.loadLatest()?.model["w"]?.scalars == [1])
        #expect(
            try !FileManager.default.contentsOfDirectory(atPath: ck.path).contains { $0.contains(".tmp-") })
    }
}
