import Foundation
import Tensor

/// layer_norm forward, and forward + backward, over rows of 1024, in GB/s next to the memory copy.
func normSuite(_ report: Report, a: Tensor, bytes: Double, repeats: Int, baseline: Row) throws {
    let c = a.shape[1]
    let w = Tensor.ones([c]), b = Tensor.zeros([c])
    _ = report.add(
        "memory", "layer_norm forward", unit: "GB/s",
        try measure(repeats: repeats, work: 2 * bytes * 1e-9) {
            _ = try layerNorm(a, normalizedShape: [c], weight: w, bias: b)
        }, baseline: baseline)
    let x = a
    _ = report.add(
        "memory", "layer_norm forward+backward", unit: "GB/s",
        try measure(repeats: repeats, work: 5 * bytes * 1e-9) {
            _ = try gradient(
                of: { try layerNorm($0[0], normalizedShape: [c], weight: $0[1], bias: $0[2]).sum() },
                at: [x, w, b])
        }, baseline: baseline)
}

/// Attention forward + backward GFLOP/s (head dim 64, no mask), as a fraction of the sgemm peak
/// measured in the same run. Flops: forward 4 T^2 D per head, backward 2.5x that.
func attentionSuite(_ report: Report, peak: Row, repeats: Int) throws {
    for (t, heads) in [(256, 8), (1024, 4), (4096, 1)] {
        var g = RandomGenerator(seed: 4)
        let q = Tensor.normal([1, heads, t, 64], generator: &g)
        let k = Tensor.normal([1, heads, t, 64], generator: &g)
        let v = Tensor.normal([1, heads, t, 64], generator: &g)
        let fwd = 4 * Double(t) * Double(t) * 64 * Double(heads) * 1e-9
        _ = report.add(
            "attention", "forward T=\(t) H=\(heads) D=64", unit: "GFLOP/s",
            try measure(repeats: repeats, work: fwd) {
                _ = try scaledDotProductAttention(q: q, k: k, v: v)
            }, baseline: peak)
        _ = report.add(
            "attention", "forward+backward T=\(t) H=\(heads) D=64", unit: "GFLOP/s",
            try measure(repeats: repeats, work: 3.5 * fwd) {
                _ = try gradient(
                    of: { try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2]).sum() }, at: [q, k, v])
            }, baseline: peak)
        if t == 1024 {
            // Causal and packed documents (8 documents of 128): masked blocks are skipped.
            _ = report.add(
                "attention", "forward+backward causal T=1024 H=4 (half the flops)", unit: "GFLOP/s",
                try measure(repeats: repeats, work: 3.5 * fwd / 2) {
                    _ = try gradient(
                        of: {
                            try scaledDotProductAttention(
                                q: $0[0], k: $0[1], v: $0[2], mask: AttentionMask(causal: true)
                            ).sum()
                        }, at: [q, k, v])
                }, baseline: peak)
        }
    }
}

/// Cross-entropy over [4096, 32000] logits, forward + backward: milliseconds per call and GB/s of
/// logits traffic (read forward, read + write backward).
func crossEntropySuite(_ report: Report, repeats: Int) throws {
    let n = 4096, vocab = 32000
    var g = RandomGenerator(seed: 5)
    let logits = Tensor.normal([n, vocab], generator: &g)
    let targets = IndexTensor((0..<n).map { ($0 * 7919) % vocab })
    let bytes = Double(n * vocab * 4)
    let r = try measure(repeats: repeats, work: 1) {
        _ = try gradient(
            of: { try crossEntropy(logits: $0[0], targets: targets, zLossCoefficient: 1e-4) }, at: [logits])
    }
    _ = report.add("loss", "cross_entropy fwd+bwd [4096, 32000] (calls/s)", unit: "1/s", r)
    _ = report.add(
        "loss", "cross_entropy fwd+bwd [4096, 32000] logits traffic", unit: "GB/s",
        (r.best * 3 * bytes * 1e-9, r.median * 3 * bytes * 1e-9))
}
