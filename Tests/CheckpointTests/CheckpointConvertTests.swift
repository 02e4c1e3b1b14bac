import Checkpoint
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

/// The `weights` app: convert between safetensors and HDF5 both ways, and inspect every format.
@Suite struct CheckpointConvertTests {
    func weights(_ args: [String]) throws -> String {
        guard let exe = weightsExecutable() else {
            throw TestFailure(
                "the weights executable is not next to the test bundle; build everything (swift build) first")
        }
        let r = try runProcess(exe, args, timeout: 120)
        guard r.status == 0 else {
            throw TestFailure("weights \(args.joined(separator: " ")) failed: \(r.stderr)")
        }
        return r.stdout
    }

    @Test(arguments: WeightDType.allCases)
    func convertRoundTripsAreBitExact(_ dtype: WeightDType) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = try sampleTensors(seed: 61)
        let st = dir.file("in.safetensors"), h5 = dir.file("mid.h5"), back = dir.file("back.safetensors")
        try SafetensorsFile.write(tensors, to: st, dtype: dtype, metadata: ["format": "pt"])
        _ = try weights(["convert", st, h5, "--dtype", dtype.rawValue])
        _ = try weights(["convert", h5, back, "--dtype", dtype.rawValue])
        let a = try SafetensorsFile(path: st), b = try SafetensorsFile(path: back)
        #expect(b.tensorInfos == a.tensorInfos)
        #expect(try WeightsFile.open(h5).tensorNames == tensors.names)
        // The stored bytes of every tensor are identical after safetensors -> HDF5 -> safetensors.
        for name in tensors.names {
            let x = try a.withRawBytes(name) { Array($0) }, y = try b.withRawBytes(name) { Array($0) }
            #expect(x == y, "\(name)")
        }
        // And HDF5 -> safetensors -> HDF5, with the configuration carried along.
        let h5a = dir.file("a.h5"), mid = dir.file("mid.safetensors"), h5b = dir.file("b.h5")
        try WeightsFile.write(tensors, to: h5a, dtype: dtype, config: "{\"depth\": 2}")
        _ = try weights(["convert", h5a, mid, "--dtype", dtype.rawValue])
        _ = try weights(["convert", mid, h5b, "--dtype", dtype.rawValue])
        let fa = try WeightsFile.open(h5a), fb = try WeightsFile.open(h5b)
        #expect(fb.config == "{\"depth\": 2}")
        #expect(fb.tensorInfos == fa.tensorInfos)
        expectIdentical(try fb.readAll(), try fa.readAll())
    }

    @Test func convertWidensAndNarrows() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = try sampleTensors(seed: 62)
        let st = dir.file("in.safetensors"), h5 = dir.file("w.h5")
        try SafetensorsFile.write(tensors, to: st)
        let out = try weights(["convert", st, h5, "--dtype", "bfloat16"])
        #expect(out.contains("as bfloat16"))
        let f = try WeightsFile.open(h5)
        for name in tensors.names {
            #expect(
                bits(try f.readTensor(name))
                    == tensors[name]!.scalars.map { roundTripped($0, .bfloat16).bitPattern })
        }
        #expect(throws: TestFailure.self) { _ = try weights(["convert", st, dir.file("w.txt")]) }
    }

    @Test func inspectListsEveryFormat() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors: NamedTensors = [
            "vision_model.encoder.layers.0.self_attn.q_proj.weight": Tensor.zeros([8, 4]),
            "logit_scale": Tensor(2),
        ]
        let h5 = dir.file("w.h5"), st = dir.file("w.safetensors"), bin = dir.file("pytorch_model.bin")
        try WeightsFile.write(tensors, to: h5, dtype: .float16, config: "{\"k\": 1}")
        try SafetensorsFile.write(tensors, to: st, dtype: .bfloat16, metadata: ["format": "pt"])
        let (pickle, storages) = samplePickle()
        try Data(torchArchive(pickle, storages: storages)).write(to: URL(fileURLWithPath: bin))

        let a = try weights(["inspect", h5])
        for needle in [
            "hdf5", "@format = sightline-weights", "@config = {\"k\": 1}", "q_proj.weight", "[8, 4]",
            "float16", "33 parameters",
        ] {
            #expect(a.contains(needle), "\(needle) not in:\n\(a)")
        }
        let b = try weights(["inspect", st])
        for needle in [
            "safetensors", "format = pt", "logit_scale", "[]", "bfloat16", "2 tensors, 33 parameters",
        ] {
            #expect(b.contains(needle), "\(needle) not in:\n\(b)")
        }
        let c = try weights(["inspect", bin])
        for needle in ["pytorch", "a.weight_t", "[4, 3]", "int64", "8 tensors, 48 parameters"] {
            #expect(c.contains(needle), "\(needle) not in:\n\(c)")
        }
        #expect(try weights(["info"]).contains("HDF5 1."))
    }

    /// Errors reach the user once, as Sightline's message; HDF5's own error printing is off.
    @Test func errorsAreReportedOnceWithoutHDF5Diagnostics() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let bad = dir.file("bad.h5")
        try Data([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]).write(
            to: URL(fileURLWithPath: bad))
        guard let exe = weightsExecutable() else { throw TestFailure("no weights executable") }
        let r = try runProcess(exe, ["inspect", bad])
        #expect(r.status != 0)
        #expect(r.stderr.contains(bad) && r.stderr.contains("cannot open as HDF5"), "\(r.stderr)")
        #expect(!r.stderr.contains("HDF5-DIAG") && !r.stdout.contains("HDF5-DIAG"), "\(r.stderr)")
    }
}
