import SightlineTestSupport
import Tensor
import Testing

@Test func blasLoadsWithAKnownKernelAndReason() {
    let r = ComputeRuntime.blas()
    #expect(r.loaded, "\(r.error)")
    #expect(!r.kernel.isEmpty)
    #expect(!r.reason.isEmpty)
    #expect(r.threads >= 1)
}

@Test func sgemmAgreesWithLoopsForEveryTransposeFlag() {
    let m = 7, n = 5, k = 9
    var rng = SplitMix(13)
    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
    let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
    // Reference: C = A[m,k] B[k,n].
    var ref = [Float](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n { for p in 0..<k { ref[i * n + j] += a[i * k + p] * b[p * n + j] } } }
    // A stored transposed ([k, m]) and B stored transposed ([n, k]).
    var at = [Float](repeating: 0, count: m * k)
    var bt = [Float](repeating: 0, count: k * n)
    for i in 0..<m { for p in 0..<k { at[p * m + i] = a[i * k + p] } }
    for p in 0..<k { for j in 0..<n { bt[j * k + p] = b[p * n + j] } }
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        var c = [Float](repeating: 0, count: m * n)
        let pa = ta ? at : a, pb = tb ? bt : b
        BLAS.sgemm(
            transA: ta, transB: tb, m: m, n: n, k: k, a: pa, lda: ta ? m : k, b: pb, ldb: tb ? k : n,
            c: &c, ldc: n)
        #expect(relativeError(c, ref) < 1e-6, "transA \(ta) transB \(tb)")
    }
}

@Test func threadSettingReachesOpenBLAS() {
    let before = ComputeRuntime.threads
    defer { ComputeRuntime.threads = before }
    ComputeRuntime.threads = 1
    #expect(ComputeRuntime.blas().threads == 1)
    var seen = 0
    ComputeRuntime.parallelFor(1 << 20, grain: 1) { _ in seen += 1 }
    #expect(seen == 1)  // one thread: one chunk
}
