import Checkpoint
import Foundation
import Layers
import Tensor
import TensorFiles
import Testing

/// A small module tree: two linear layers, a persistent buffer and a derived (non-persistent) one.
final class TinyTower: Module {
    let fc1: Linear
    let fc2: Linear
    let scale = Buffer(Tensor([1, 2, 3]))
    let positionIds = Buffer(Tensor([0, 1, 2, 3]), persistent: false)

    init(seed: UInt64) {
        fc1 = Linear(4, 3, seed: seed)
        fc2 = Linear(3, 2, bias: false, seed: seed + 1)
        super.init()
    }

    override var localChildren: [(String, Module)] { [("fc1", fc1), ("fc2", fc2)] }
    override var localBuffers: [(String, Buffer)] { [("scale", scale), ("position_ids", positionIds)] }
}

@Suite struct CheckpointModuleTests {
    @Test func saveAndLoadAModule() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let a = TinyTower(seed: 1)
        let path = dir.file("tiny.h5")
        try WeightsFile.save(module: a, to: path, config: "{\"kind\": \"tiny\"}")
        let f = try WeightsFile.open(path)
        #expect(f.tensorNames == ["fc1.weight", "fc1.bias", "fc2.weight", "scale"])
        #expect(a.expectedTensors.map(\.shape) == [[3, 4], [3], [2, 3], [3]])

        let b = TinyTower(seed: 99)
        b.scale.value = Tensor([0, 0, 0])
        #expect(bits(b.fc1.weight.data) != bits(a.fc1.weight.data))
        let report = try WeightsFile.load(into: b, from: path)
        #expect(report.isClean && report.loaded.count == 4, "\(report)")
        for ((n, x), (_, y)) in zip(a.stateDict(), b.stateDict()) { #expect(bits(x) == bits(y), "\(n)") }

        // A strict load that finds a problem changes nothing.
        let partial = dir.file("partial.safetensors")
        try SafetensorsFile.write(["fc1.weight": Tensor.zeros([3, 4])], to: partial)
        let c = TinyTower(seed: 5)
        let before = bits(c.fc1.weight.data)
        #expect(throws: LoadError.self) { try WeightsFile.load(into: c, from: partial) }
        #expect(bits(c.fc1.weight.data) == before)
        // Non-strict: loads what is there and reports the rest.
        let r = try WeightsFile.load(into: c, from: partial, options: LoadOptions(strict: false))
        #expect(c.fc1.weight.data.scalars == Array(repeating: 0, count: 12))
        #expect(r.missing == ["fc1.bias", "fc2.weight", "scale"])
    }
}
