import Foundation
import SightlineTestSupport
import Tensor
import Testing

/// Cross-entropy in Double, written out independently of the kernels: per supervised row,
/// lse = m + log(sum exp(x - m)), ce = (1 - eps)(lse - x_t) + eps(lse - mean x), z = lse^2.
private func doubleCrossEntropy(
    _ logits: Tensor, _ targets: [Int], ignore: Int = -100, eps: Double = 0
) -> (ceSum: Double, lseSquares: Double, count: Int, lse: [Double]) {
    let c = logits.shape.last!
    let x = logits.scalars.map(Double.init)
    var ceSum = 0.0, sq = 0.0, count = 0
    var lses: [Double] = []
    for (r, t) in targets.enumerated() {
        if t == ignore { lses.append(.nan); continue }
        let row = Array(x[(r * c)..<((r + 1) * c)])
        let m = row.max()!
        let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
        let mean = row.reduce(0, +) / Double(c)
        ceSum += (1 - eps) * (lse - row[t]) + eps * (lse - mean)
        sq += lse * lse
        count += 1
        lses.append(lse)
    }
    return (ceSum, sq, count, lses)
}

@Suite struct LossCrossEntropyTests {
    let logits = randomTensor([6, 7], seed: 1, low: -3, high: 3)
    /// Rows 1 and 4 are ignored.
    let targets = IndexTensor([3, -100, 0, 6, -100, 2])

    @Test func closedFormTinyCaseMatchesLogSumExpByHand() throws {
        let x = try Tensor(rows: [[1, 2, 3], [0.5, -1, 2]])
        let loss = try crossEntropy(logits: x, targets: IndexTensor([2, 0])).item()
        // Row 0: lse = 3 + log(e^-2 + e^-1 + 1); row 1: lse = 2 + log(e^-1.5 + e^-3 + 1).
        let lse0 = 3 + log(exp(-2.0) + exp(-1.0) + 1), lse1 = 2 + log(exp(-1.5) + exp(-3.0) + 1)
        let expected = ((lse0 - 3) + (lse1 - 0.5)) / 2
        #expect(abs(Double(loss) - expected) < 1e-6 * expected, "\(loss) vs \(expected)")

        // The gradient of the mean: (softmax - onehot) / 2.
        let g = try gradient(of: { try crossEntropy(logits: $0[0], targets: IndexTensor([2, 0])) }, at: [x])[
            0]
        let rows: [[Double]] = [[1, 2, 3], [0.5, -1, 2]]
        var want: [Double] = []
        for (r, (row, t)) in zip(rows, [2, 0]).enumerated() {
            let lse = r == 0 ? lse0 : lse1
            for (j, v) in row.enumerated() { want.append((exp(v - lse) - (j == t ? 1 : 0)) / 2) }
        }
        #expect(relativeError(g.scalars, want) < 1e-6, "\(g.scalars) vs \(want)")
    }

    @Test func matchesDoubleComputationWithSmoothingAndIgnoredRows() throws {
        for eps in [0.0, 0.1, 1.0] {
            let parts = try crossEntropyParts(logits: logits, targets: targets, labelSmoothing: Float(eps))
            let ref = doubleCrossEntropy(logits, targets.values, eps: eps)
            #expect(parts.count == 4)
            #expect(abs(Double(try parts.lossSum.item()) - ref.ceSum) < 1e-5 * ref.ceSum, "eps \(eps)")
            let mean = try crossEntropy(logits: logits, targets: targets, labelSmoothing: Float(eps))
            #expect(abs(Double(try mean.item()) - ref.ceSum / 4) < 1e-5 * ref.ceSum, "eps \(eps)")
            let sum = try crossEntropy(
                logits: logits, targets: targets, labelSmoothing: Float(eps), reduction: .sum)
            #expect(abs(Double(try sum.item()) - ref.ceSum) < 1e-5 * ref.ceSum, "eps \(eps)")
        }
    }

    @Test func zLossIsCoefficientTimesMeanSquaredLogSumExp() throws {
        let coef: Float = 0.03
        let ref = doubleCrossEntropy(logits, targets.values)
        let parts = try crossEntropyParts(logits: logits, targets: targets, zLossCoefficient: coef)
        let wantSum = Double(coef) * ref.lseSquares
        #expect(abs(Double(try parts.zLossSum.item()) - wantSum) < 1e-5 * wantSum)
        // Through the mean: (CE + z) / count minus CE / count is coef * mean(lse^2) over supervised rows.
        let withZ = try crossEntropy(logits: logits, targets: targets, zLossCoefficient: coef).item()
        let without = try crossEntropy(logits: logits, targets: targets).item()
        let wantMean = Double(coef) * ref.lseSquares / Double(ref.count)
        #expect(abs(Double(withZ - without) - wantMean) < 1e-5, "\(withZ - without) vs \(wantMean)")
        // No coefficient, no z-loss.
        #expect(try crossEntropyParts(logits: logits, targets: targets).zLossSum.item() == 0)
    }

    @Test func gradCheckOverIgnoreSmoothingAndZLoss() throws {
        for (eps, z) in [(Float(0), Float(0)), (0.2, 0), (0, 0.05), (0.2, 0.05)] {
            // Both parts at once (weighted differently by gradCheck), then the mean loss.
            let parts = try gradCheck([logits]) { xs in
                let p = try crossEntropyParts(
                    logits: xs[0], targets: targets, labelSmoothing: eps, zLossCoefficient: z)
                return try Tensor.stack([p.lossSum, p.zLossSum])
            }
            #expect(parts.passed, "eps \(eps) z \(z): \(parts)")
            let mean = try gradCheck([logits]) { xs in
                try crossEntropy(logits: xs[0], targets: targets, labelSmoothing: eps, zLossCoefficient: z)
            }
            #expect(mean.passed, "eps \(eps) z \(z): \(mean)")
        }
        // Only the z-loss part (gradient of the CE part is zero then).
        let zOnly = try gradCheck([logits]) { xs in
            try crossEntropyParts(logits: xs[0], targets: targets, zLossCoefficient: 0.1).zLossSum
        }
        #expect(zOnly.passed, "\(zOnly)")
        // Ignored rows get exactly zero gradient.
        let g = try gradient(
            of: {
                try crossEntropy(logits: $0[0], targets: targets, labelSmoothing: 0.1, zLossCoefficient: 0.1)
            }, at: [logits])[0]
        let s = g.scalars
        #expect(s[7..<14].allSatisfy { $0 == 0 } && s[28..<35].allSatisfy { $0 == 0 })
    }

    @Test func cpuAgreesWithReference() throws {
        // 37 classes exercise the vector body and the scalar tail; 5000 span several 2048-wide
        // blocks, with logits rising along the row so the running max is rescaled.
        let wide =
            try randomTensor([3, 5000], seed: 4, low: -2, high: 2) + Tensor.arange(0, 5000).reshaped([
                1, 5000,
            ]) * 0.002
        let cases: [(Tensor, IndexTensor)] = [
            (
                randomTensor([9, 37], seed: 3, low: -4, high: 4),
                IndexTensor([0, 36, -100, 5, 17, -100, 2, 2, 30])
            ),
            (wide, IndexTensor([4999, -100, 17])),
        ]
        for (x, t) in cases {
            for (eps, z) in [(Float(0), Float(0)), (0.1, 0.02)] {
                let d = try backendDisagreement([x]) { xs in
                    let p = try crossEntropyParts(
                        logits: xs[0], targets: t, labelSmoothing: eps, zLossCoefficient: z)
                    return try Tensor.stack([p.lossSum, p.zLossSum])
                }
                #expect(d.output <= 1e-5 && d.gradient <= 1e-5, "\(x.shape) eps \(eps) z \(z): \(d)")
            }
        }
    }

    @Test func countAndAllIgnoredGuard() throws {
        let t = IndexTensor([-100, -100, -100, -100, -100, -100])
        let parts = try crossEntropyParts(logits: logits, targets: t, zLossCoefficient: 0.1)
        #expect(parts.count == 0)
        #expect(try parts.lossSum.item() == 0 && parts.zLossSum.item() == 0)
        let (value, grads) = try valueAndGradient(
            of: { try crossEntropy(logits: $0[0], targets: t, zLossCoefficient: 0.1) }, at: [logits])
        #expect(try value.item() == 0)
        #expect(grads[0].scalars.allSatisfy { $0 == 0 })
        // A custom ignoreIndex that is also a valid class: rows with that target are skipped.
        let custom = try crossEntropyParts(
            logits: logits, targets: IndexTensor([3, 1, 0, 3, 3, 2]), ignoreIndex: 3)
        #expect(custom.count == 3)
        let ref = doubleCrossEntropy(logits, [3, 1, 0, 3, 3, 2], ignore: 3)
        #expect(abs(Double(try custom.lossSum.item()) - ref.ceSum) < 1e-5 * ref.ceSum)
    }

    @Test func batchedLogitsFlattenWithTargets() throws {
        let x3 = try logits.reshaped([2, 3, 7])
        let t2 = try IndexTensor(shape: [2, 3], values: targets.values)
        let a = try crossEntropy(logits: x3, targets: t2, labelSmoothing: 0.1).item()
        let b = try crossEntropy(logits: logits, targets: targets, labelSmoothing: 0.1).item()
        #expect(a == b)
        let g = try gradCheck([x3]) { xs in try crossEntropy(logits: xs[0], targets: t2) }
        #expect(g.passed, "\(g)")
        #expect(throws: TensorError.self) { try crossEntropy(logits: x3, targets: targets) }
        #expect(throws: TensorError.self) {
            try crossEntropy(logits: Tensor([1, 2, 3]), targets: IndexTensor([0]))
        }
    }

    @Test func masksOfMinusInfinityContributeNothing() throws {
        // A vocabulary mask of -inf: same loss as the row without those classes, zero gradient there.
        let ninf = -Float.infinity
        let masked = try Tensor(rows: [[0.5, ninf, 1.5, ninf, -0.5], [ninf, 2, 0, 1, ninf]])
        let plain = try Tensor(rows: [[0.5, 1.5, -0.5], [2, 0, 1]])
        let a = try crossEntropy(logits: masked, targets: IndexTensor([2, 3])).item()
        let b = try crossEntropy(logits: plain, targets: IndexTensor([1, 2])).item()
        #expect(abs(a - b) < 1e-6, "\(a) vs \(b)")
        let g = try gradient(
            of: { try crossEntropy(logits: $0[0], targets: IndexTensor([2, 3])) }, at: [masked])[0].scalars
        #expect([g[1], g[3], g[5], g[9]].allSatisfy { $0 == 0 } && g.allSatisfy { $0.isFinite }, "\(g)")
    }

    @Test func badTargetsAndArgumentsThrowWithDetails() throws {
        do {
            _ = try crossEntropy(logits: logits, targets: IndexTensor([3, 1, 7, 0, 0, 0]))
            Issue.record("target 7 of 7 classes should throw")
        } catch let e as TensorError {
            #expect(e.op == "cross_entropy")
            #expect(
                e.message.contains("row 2") && e.message.contains("7") && e.message.contains("[0, 7)"), "\(e)"
            )
        }
        do {
            _ = try crossEntropy(
                logits: logits.reshaped([2, 3, 7]),
                targets: IndexTensor(shape: [2, 3], values: [0, 0, 0, 0, -1, 0]))
            Issue.record("target -1 should throw")
        } catch let e as TensorError {
            #expect(
                e.message.contains("row 4") && e.message.contains("-1") && e.message.contains("[1, 1]"),
                "\(e)")
        }
        #expect(throws: TensorError.self) {
            try crossEntropy(logits: logits, targets: targets, labelSmoothing: 1.5)
        }
        #expect(throws: TensorError.self) { try crossEntropy(logits: logits, targets: IndexTensor([0, 1])) }
    }
}

@Suite struct LossMSETests {
    let a = randomTensor([3, 4], seed: 5)
    let b = randomTensor([3, 4], seed: 6)

    @Test func meanAndSumMatchClosedForm() throws {
        let d = zip(a.scalars, b.scalars).map { Double($0) - Double($1) }
        let sum = d.reduce(0) { $0 + $1 * $1 }
        #expect(abs(Double(try mseLoss(a, b, reduction: .sum).item()) - sum) < 1e-6 * sum)
        #expect(abs(Double(try mseLoss(a, b).item()) - sum / 12) < 1e-6 * sum)
        #expect(throws: TensorError.self) { try mseLoss(a, randomTensor([4, 3], seed: 1)) }
    }

    @Test func gradientsAndBackends() throws {
        for reduction in [LossReduction.mean, .sum] {
            let g = try gradCheck([a, b]) { try mseLoss($0[0], $0[1], reduction: reduction) }
            #expect(g.passed, "\(reduction): \(g)")
            let d = try backendDisagreement([a, b]) { try mseLoss($0[0], $0[1], reduction: reduction) }
            #expect(d.output <= 1e-5 && d.gradient <= 1e-5, "\(d)")
        }
    }
}

@Suite struct LossDropoutTests {
    @Test func maskIsUniformDrawAtLeastPAndKeptValuesAreScaled() throws {
        let x = randomTensor([41, 49], seed: 2, low: 0.5, high: 1.5)  // 2009: a partial Philox block
        var gen = RandomGenerator(seed: 99, offset: 3)
        var twin = gen
        let y = try dropout(x, p: 0.3, training: true, generator: &gen)
        let u = Tensor.uniform(x.shape, generator: &twin)
        #expect(gen == twin, "dropout must advance the generator as one uniform draw")
        var wrong: [Int] = []
        for (i, (xi, (yi, ui))) in zip(x.scalars, zip(y.scalars, u.scalars)).enumerated() {
            let ok = ui >= 0.3 ? abs(yi - xi / 0.7) <= 1e-6 * abs(yi) : yi == 0
            if !ok { wrong.append(i) }
        }
        #expect(
            wrong.isEmpty,
            "\(wrong.count) elements disagree with the uniform draw, first at \(wrong.prefix(5))")
        // The seeded form is the same function of (seed, offset).
        let z = try dropout(x, p: 0.3, training: true, seed: 99, offset: 3)
        #expect(z.scalars == y.scalars)
    }

    @Test func sameMaskOnOneAndTwoThreadsAndKeepFractionNearOneMinusP() throws {
        let x = Tensor.ones([1 << 20])
        let one = try ComputeRuntime.$threadsOverride.withValue(1) {
            try dropout(x, p: 0.25, training: true, seed: 1234, offset: 0).scalars
        }
        let two = try ComputeRuntime.$threadsOverride.withValue(2) {
            try dropout(x, p: 0.25, training: true, seed: 1234, offset: 0).scalars
        }
        #expect(one == two)
        let kept = Double(two.filter { $0 != 0 }.count) / Double(two.count)
        // Binomial standard deviation is sqrt(0.25 * 0.75 / 2^20) ~ 4e-4.
        #expect(abs(kept - 0.75) < 3e-3, "kept \(kept)")
        // The scaled mean stays near 1 (expectation is preserved).
        let mean = two.reduce(0.0) { $0 + Double($1) } / Double(two.count)
        #expect(abs(mean - 1) < 5e-3, "mean \(mean)")
    }

    @Test func gradientUsesTheSameMask() throws {
        let x = randomTensor([5, 6], seed: 8)
        let g = try gradCheck([x]) { try dropout($0[0], p: 0.4, training: true, seed: 5, offset: 11) }
        #expect(g.passed, "\(g)")
        let y = try dropout(x, p: 0.4, training: true, seed: 5, offset: 11)
        let dx = try gradient(
            of: { try dropout($0[0], p: 0.4, training: true, seed: 5, offset: 11).sum() }, at: [x])[0]
        let consistent = zip(y.scalars, dx.scalars).allSatisfy { yi, di in
            yi == 0 ? di == 0 : abs(di - 1 / 0.6) < 1e-6
        }
        #expect(consistent, "dx \(dx.scalars) vs y \(y.scalars)")
        let d = try backendDisagreement([x]) {
            try dropout($0[0], p: 0.4, training: true, seed: 5, offset: 11)
        }
        #expect(d.output <= 1e-6 && d.gradient <= 1e-6, "\(d)")
    }

    @Test func evaluationAndEdgeProbabilities() throws {
        let x = randomTensor([4, 4], seed: 9)
        var gen = RandomGenerator(seed: 1)
        #expect(try dropout(x, p: 0.5, training: false, generator: &gen).scalars == x.scalars)
        #expect(try dropout(x, p: 0, training: true, generator: &gen).scalars == x.scalars)
        #expect(try dropout(x, p: 1, training: true, generator: &gen).scalars.allSatisfy { $0 == 0 })
        #expect(gen.offset == 0)
        #expect(throws: TensorError.self) { try dropout(x, p: 1.5, training: true, generator: &gen) }
        #expect(throws: TensorError.self) { try dropout(x, p: -0.1, training: true, seed: 0, offset: 0) }
    }
}
