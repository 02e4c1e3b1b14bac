import Foundation
import Layers
import Tensor

/// Heap allocations per steady-state training step of a small MLP with plain SGD: malloc-family
/// calls counted by the interposer, and fresh tensor buffers from the pool, from the third step on.
func allocationSuite(_ report: Report, steps: Int) throws {
    let model = Sequential([Linear(64, 256, seed: 1), Lambda { relu($0) }, Linear(256, 64, seed: 2)])
    let params = model.namedParameters()
    var g = RandomGenerator(seed: 3)
    let x = Tensor.uniform([32, 64], generator: &g), target = Tensor.uniform([32, 64], generator: &g)
    func step() throws {
        let (_, grads) = try valueAndGradient(at: params) { try (model(x) - target).square().mean() }
        for (name, p) in params { try p.update { try $0.axpby(-0.01, grads[name]!) } }
    }
    for _ in 0..<2 { try step() }
    let m0 = mallocCounters()
    let b0 = BufferPool.shared.allocations
    for _ in 0..<steps { try step() }
    let m1 = mallocCounters()
    let b1 = BufferPool.shared.allocations
    let calls = Double(m1.calls - m0.calls) / Double(steps)
    let bytes = Double(m1.bytes - m0.bytes) / Double(steps)
    let buffers = Double(b1 - b0) / Double(steps)
    _ = report.add("alloc", "malloc calls per step (MLP 64-256-64, SGD)", unit: "calls", (calls, calls))
    _ = report.add("alloc", "malloc bytes per step", unit: "bytes", (bytes, bytes))
    _ = report.add("alloc", "new tensor buffers per step", unit: "buffers", (buffers, buffers))
    // Where the calls come from: a bare GEMM and a bare elementwise op.
    let w = Tensor.uniform([64, 256], generator: &g)
    _ = try Tensor.matmul(x, w)
    let c0 = mallocCounters()
    for _ in 0..<10 { _ = try Tensor.matmul(x, w) }
    let c1 = mallocCounters()
    for _ in 0..<10 { _ = try x + x }
    let c2 = mallocCounters()
    _ = report.add(
        "alloc", "malloc calls per matmul [32,64]x[64,256]", unit: "calls",
        (Double(c1.calls - c0.calls) / 10, Double(c1.bytes - c0.bytes) / 10))
    _ = report.add(
        "alloc", "malloc calls per add [32,64]", unit: "calls",
        (Double(c2.calls - c1.calls) / 10, Double(c2.bytes - c1.bytes) / 10))
}
