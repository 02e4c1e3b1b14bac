import Foundation
import Optim
import Tensor

/// One AdamW step over 60M parameters (a 4-layer stack of 3872x3872 matrices): time per step and
/// GB/s of optimizer traffic (reads p, g, m, v and writes p, m, v: 28 bytes per parameter), next to a
/// memory copy of the same bytes in the same run.
func optimizerSuite(_ report: Report, repeats: Int) throws {
    let side = 3872, layers = 4  // 4 * 3872^2 = 59.97M parameters
    var gen = RandomGenerator(seed: 9)
    var params: [(String, Parameter)] = []
    var grads = Gradients()
    for i in 0..<layers {
        let p = Parameter(Tensor.normal([side, side], std: 0.02, generator: &gen))
        params.append(("layers.\(i).weight", p))
        let g = Tensor.normal([side, side], std: 1e-3, generator: &gen)
        let (_, one) = try valueAndGradient(at: [("layers.\(i).weight", p)]) { try (p.value * g).sum() }
        try grads.accumulate(one)
    }
    let n = side * side * layers
    let bytes = Double(n) * 28
    let src = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
    let dst = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
    defer { src.deallocate(); dst.deallocate() }
    src.initializeMemory(as: UInt8.self, repeating: 1, count: n * 4)
    let copy = report.add(
        "optim", "memcpy \(n / 1_000_000)M floats", unit: "GB/s",
        measure(repeats: repeats, work: Double(n) * 8 * 1e-9) {
            dst.copyMemory(from: src, byteCount: n * 4)
        })
    let opt = AdamW(.init(learningRate: 1e-4, weightDecay: 0.1, semantics: .decoupled))
    let r = try measure(repeats: repeats, work: bytes * 1e-9) {
        // The norm given: this row times the update alone (the `optim-phase` suite adds the norm).
        try opt.update(params, gradients: grads, gradientNorm: 1, maxGradientNorm: nil)
    }
    _ = report.add("optim", "AdamW step, 60M parameters", unit: "GB/s", r, baseline: copy)
    _ = report.add(
        "optim", "AdamW step, 60M parameters (ms)", unit: "ms",
        (bytes * 1e-9 / r.best * 1e3, bytes * 1e-9 / r.median * 1e3))
}
