import Foundation
import Tensor

/// Memory-bound kernels in GB/s (bytes read + written), next to a plain memory copy of the same size.
func memorySuite(_ report: Report, elements n: Int, repeats: Int) throws {
    let bytes = Double(n * 4)
    let src = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
    let dst = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
    defer { src.deallocate(); dst.deallocate() }
    src.initializeMemory(as: UInt8.self, repeating: 1, count: n * 4)
    let copy = report.add(
        "memory", "memcpy \(n / 1_000_000)M floats", unit: "GB/s",
        measure(repeats: repeats, work: 2 * bytes * 1e-9) {
            dst.copyMemory(from: src, byteCount: n * 4)
        })
    var g = RandomGenerator(seed: 2)
    let a = Tensor.uniform([n / 1024, 1024], generator: &g),
        b = Tensor.uniform([n / 1024, 1024], generator: &g)
    _ = report.add(
        "memory", "add a + b", unit: "GB/s",
        try measure(repeats: repeats, work: 3 * bytes * 1e-9) { _ = try a + b }, baseline: copy)
    _ = report.add(
        "memory", "mul by row vector (broadcast)", unit: "GB/s",
        try measure(repeats: repeats, work: 2 * bytes * 1e-9) {
            _ = try a * b.slice(axis: 0, start: 0, end: 1)
        }, baseline: copy)
    _ = report.add(
        "memory", "exp", unit: "GB/s", measure(repeats: repeats, work: 2 * bytes * 1e-9) { _ = a.exp() },
        baseline: copy)
    _ = report.add(
        "memory", "gelu (tanh)", unit: "GB/s",
        measure(repeats: repeats, work: 2 * bytes * 1e-9) { _ = gelu(a, approximate: true) }, baseline: copy)
    var acc = a
    _ = report.add(
        "memory", "axpy in place", unit: "GB/s",
        try measure(repeats: repeats, work: 3 * bytes * 1e-9) { try acc.axpby(0.5, b) }, baseline: copy)
    _ = report.add(
        "memory", "sum over rows", unit: "GB/s",
        try measure(repeats: repeats, work: bytes * 1e-9) { _ = try a.sum(axis: 1) }, baseline: copy)
    _ = report.add(
        "memory", "softmax rows of 1024", unit: "GB/s",
        try measure(repeats: repeats, work: 2 * bytes * 1e-9) { _ = try a.softmax(axis: -1) }, baseline: copy)
    try normSuite(report, a: a, bytes: bytes, repeats: repeats, baseline: copy)
}
