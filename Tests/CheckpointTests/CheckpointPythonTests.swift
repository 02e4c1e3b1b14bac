import Checkpoint
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

/// Reads Sightline's files with h5py and safetensors, and reads files that Python wrote (h5py,
/// safetensors, and a torch.save-style zip made with pickle + zipfile, since torch is not installed).
/// Runs wherever `python3` exists; skipped only when it does not. A missing h5py, numpy or safetensors
/// fails the test (scripts/setup.sh installs them).
@Suite(Python.requires("h5py", "numpy", "safetensors"))
struct CheckpointPythonTests {
    static let readScript = #"""
        import json, struct, sys
        import h5py, numpy as np
        from safetensors.numpy import load_file

        def f32hex(a):
            return np.ascontiguousarray(a, dtype="<f4").tobytes().hex()

        out = {}
        for path in sys.argv[1:]:
            entry = {"names": [], "tensors": {}, "attrs": {}}
            if path.endswith(".h5"):
                f = h5py.File(path, "r")
                weights = {k: f[k][()] for k in f}          # the two lines the docs promise
                for k, v in f.attrs.items():
                    entry["attrs"][k] = v if isinstance(v, str) else int(v)
                for k in f:
                    a = np.asarray(weights[k])
                    if f[k].attrs.get("dtype") == "bfloat16":
                        a = (a.astype(np.uint32) << 16).view(np.float32)
                    entry["names"].append(k)
                    entry["tensors"][k] = {"shape": list(a.shape), "dtype": str(f[k].dtype), "hex": f32hex(a)}
            elif path.endswith("bf16.safetensors"):
                # numpy has no bfloat16: read the layout by hand (8-byte length, JSON, data).
                raw = open(path, "rb").read()
                n = struct.unpack("<Q", raw[:8])[0]
                header = json.loads(raw[8:8 + n])
                for k, v in header.items():
                    if k == "__metadata__":
                        entry["attrs"] = v
                        continue
                    b, e = v["data_offsets"]
                    u = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<u2")
                    a = (u.astype(np.uint32) << 16).view(np.float32).reshape(v["shape"])
                    entry["names"].append(k)
                    entry["tensors"][k] = {"shape": v["shape"], "dtype": v["dtype"], "hex": f32hex(a)}
            else:
                for k, a in load_file(path).items():
                    entry["names"].append(k)
                    entry["tensors"][k] = {"shape": list(a.shape), "dtype": str(a.dtype), "hex": f32hex(a)}
            out[path] = entry
        print(json.dumps(out))
        """#

    static let writeScript = #"""
        import collections, io, json, sys, types, pickle, zipfile
        import h5py, numpy as np
        from safetensors.numpy import save_file

        d = sys.argv[1]
        def values(n, scale=0.25):
            return np.arange(n, dtype=np.float64) * scale - 3

        with h5py.File(d + "/py.h5", "w") as f:
            f.create_dataset("f64", data=values(6).reshape(2, 3))
            f.create_dataset("f32", data=values(4).astype(np.float32))
            f.create_dataset("f16", data=values(5).astype(np.float16))
            f.create_dataset("i64", data=np.arange(-2, 3, dtype=np.int64))
            f.create_dataset("scalar", data=np.float32(1.5))
            f.attrs["format"] = np.bytes_(b"py-writer")        # fixed-length string
            f.attrs["format_version"] = 7
            f.attrs["config"] = '{"a": 1}'

        save_file({"w": values(6).astype(np.float32).reshape(3, 2), "h": values(3).astype(np.float16),
                   "ids": np.arange(4, dtype=np.int64)}, d + "/py.safetensors", metadata={"format": "pt"})

        # A torch.save-style archive without torch: stand-in classes registered under torch's names,
        # so that pickle writes exactly the globals torch writes.
        torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
        sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils; torch._utils = utils
        def storage_type(name):
            cls = type(name, (), {}); cls.__module__ = "torch"; setattr(torch, name, cls); return cls
        FloatStorage, HalfStorage, LongStorage = map(storage_type, ["FloatStorage", "HalfStorage", "LongStorage"])
        def _rebuild_tensor_v2(*args): pass
        _rebuild_tensor_v2.__module__ = "torch._utils"; utils._rebuild_tensor_v2 = _rebuild_tensor_v2

        class Storage:
            def __init__(self, cls, key, array): self.cls, self.key, self.array = cls, key, array
        class Tensor:
            def __init__(self, storage, offset, size, stride): self.args = (storage, offset, size, stride)
            def __reduce__(self):
                s, o, size, stride = self.args
                return (_rebuild_tensor_v2, (s, o, size, stride, False, collections.OrderedDict()))
        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, Storage):
                    return ("storage", obj.cls, obj.key, "cpu", obj.array.size)
                return None

        s0 = Storage(FloatStorage, "0", values(12).astype(np.float32))
        s1 = Storage(HalfStorage, "1", values(4).astype(np.float16))
        s2 = Storage(LongStorage, "2", np.arange(5, dtype=np.int64))
        sd = collections.OrderedDict()
        sd["vision_model.encoder.layers.0.mlp.fc1.weight"] = Tensor(s0, 0, (3, 4), (4, 1))
        sd["vision_model.encoder.layers.0.mlp.fc1.weight_t"] = Tensor(s0, 0, (4, 3), (1, 4))
        sd["vision_model.post_layernorm.bias"] = Tensor(s1, 1, (3,), (1,))
        sd["vision_model.embeddings.position_ids"] = Tensor(s2, 0, (1, 5), (5, 1))
        sd._metadata = collections.OrderedDict([("", {"version": 1})])
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(sd)
        with zipfile.ZipFile(d + "/py.bin", "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", buf.getvalue())
            z.writestr("archive/byteorder", "little")
            for s in (s0, s1, s2):
                z.writestr("archive/data/" + s.key, s.array.tobytes())
            z.writestr("archive/version", "3\n")
        print("ok")
        """#

    /// Hex of little-endian float32 values.
    func hex(_ values: [Float]) -> String {
        values.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    @Test func pythonReadsSightlineFiles() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = try sampleTensors(seed: 51)
        let config = "{\"model\": \"tiny\"}"
        var files: [(String, WeightDType)] = []
        for dtype in WeightDType.allCases {
            let h5 = dir.file("w-\(dtype.rawValue).h5")
            try WeightsFile.write(tensors, to: h5, dtype: dtype, config: config)
            let st = dir.file("w-\(dtype == .bfloat16 ? "bf16" : dtype.rawValue).safetensors")
            try SafetensorsFile.write(tensors, to: st, dtype: dtype, metadata: ["format": "pt"])
            files += [(h5, dtype), (st, dtype)]
        }
        let json = try runPython(CheckpointPythonTests.readScript, files.map(\.0), in: dir)
        let parsed = try JSONValue.parse(Array(json.utf8))
        for (path, dtype) in files {
            guard let entry = parsed[path] else {
                Issue.record("python did not report \(path)")
                continue
            }
            let names = entry["names"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(names == tensors.names, "\(path): h5py/safetensors list the names in the order written")
            for name in tensors.names {
                let t = entry["tensors"]?[name]
                #expect(
                    t?["shape"]?.arrayValue?.compactMap(\.intValue) == tensors[name]!.shape, "\(path) \(name)"
                )
                let want = hex(tensors[name]!.scalars.map { roundTripped($0, dtype) })
                #expect(t?["hex"]?.stringValue == want, "\(path) \(name)")
            }
            if path.hasSuffix(".h5") {
                #expect(entry["attrs"]?["format"]?.stringValue == "sightline-weights")
                #expect(entry["attrs"]?["format_version"]?.intValue == 1)
                #expect(entry["attrs"]?["config"]?.stringValue == config)
                #expect(
                    entry["attrs"]?["sightline_version"]?.stringValue == CheckpointFormat.sightlineVersion)
                let stored = entry["tensors"]?[tensors.names[0]]?["dtype"]?.stringValue
                #expect(
                    stored
                        == ["float32": "float32", "float16": "float16", "bfloat16": "uint16"][dtype.rawValue],
                    "\(path)")
            }
        }
    }

    @Test func sightlineReadsPythonFiles() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        _ = try runPython(CheckpointPythonTests.writeScript, [dir.path], in: dir)
        func values(_ n: Int) -> [Float] { (0..<n).map { Float(Double($0) * 0.25 - 3) } }

        let h5 = try openTensorFile(dir.file("py.h5")) as! HDF5WeightsFile
        #expect(Set(h5.tensorNames) == ["f64", "f32", "f16", "i64", "scalar"])
        #expect(h5.info(named: "f64")?.dtype == .float64)
        #expect(h5.info(named: "f16")?.dtype == .float16)
        #expect(h5.info(named: "i64")?.dtype == .int64)
        #expect(try h5.readTensor("f64").shape == [2, 3])
        #expect(try h5.readTensor("f64").scalars == values(6))
        #expect(try h5.readTensor("f32").scalars == values(4))
        #expect(try h5.readTensor("f16").scalars == values(5))
        #expect(try h5.readTensor("i64").scalars == [-2, -1, 0, 1, 2])
        #expect(try h5.readTensor("scalar").shape == [])
        #expect(h5.attribute("format") == .string("py-writer"))
        #expect(h5.attribute("format_version") == .int(7))
        #expect(h5.config == "{\"a\": 1}")

        let st = try openTensorFile(dir.file("py.safetensors"))
        #expect(try st.readTensor("w").scalars == values(6))
        #expect(try st.readTensor("w").shape == [3, 2])
        #expect(try st.readTensor("h").scalars == values(3))
        #expect(try st.readTensor("ids").scalars == [0, 1, 2, 3])
        #expect(st.metadata["format"] == "pt")

        let bin = try openTensorFile(dir.file("py.bin"))
        #expect(bin is TorchStateDict)
        let base = values(12)
        #expect(try bin.readTensor("vision_model.encoder.layers.0.mlp.fc1.weight").scalars == base)
        let t = try bin.readTensor("vision_model.encoder.layers.0.mlp.fc1.weight_t")
        #expect(t.shape == [4, 3])
        #expect(t.scalars == (0..<4).flatMap { i in (0..<3).map { j in base[i + 4 * j] } })
        #expect(
            try bin.readTensor("vision_model.post_layernorm.bias").scalars == Array(values(4).dropFirst()))
        #expect(try bin.readTensor("vision_model.embeddings.position_ids").scalars == [0, 1, 2, 3, 4])
        // And it loads through the report, the derived position ids ignored.
        let expected = [
            ExpectedTensor("vision_model.encoder.layers.0.mlp.fc1.weight", shape: [3, 4]),
            ExpectedTensor("vision_model.post_layernorm.bias", shape: [3]),
        ]
        let (_, report) = try WeightLoader.load(
            from: bin, expected: expected, options: LoadOptions(strict: false))
        #expect(report.unexpected == ["vision_model.encoder.layers.0.mlp.fc1.weight_t"])
        #expect(report.ignored == ["vision_model.embeddings.position_ids"])
        #expect(report.conversions == [.init(name: "vision_model.post_layernorm.bias", from: .float16)])
    }
}
