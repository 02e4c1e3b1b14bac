import Bridges
import SightlineTestSupport
import Testing

// Shared helpers for the Bridges tests.

/// A fixture parameter as a list of strings.
func stringList(_ f: Fixture, _ key: String) throws -> [String] {
    guard case .array(let a) = try f.param(key) else {
        throw FixtureError("\(f.name).\(key) is not an array")
    }
    return try a.map {
        guard case .string(let s) = $0 else { throw FixtureError("\(f.name).\(key) holds a non-string") }
        return s
    }
}

/// A fixture parameter as a list of number lists.
func numberLists(_ f: Fixture, _ key: String) throws -> [[Double]] {
    guard case .array(let a) = try f.param(key) else {
        throw FixtureError("\(f.name).\(key) is not an array")
    }
    return try a.map {
        guard case .array(let inner) = $0 else { throw FixtureError("\(f.name).\(key) holds a non-array") }
        return try inner.map {
            guard let d = $0.doubleValue else { throw FixtureError("\(f.name).\(key) holds a non-number") }
            return d
        }
    }
}

/// Loads `w.<name>` into every parameter and checks that the module's names, in order, are the
/// fixture's `stateDict`.
func loadWeights(_ module: Module, from f: Fixture, namesKey: String = "stateDict") throws {
    let names = try stringList(f, namesKey)
    let ours = module.namedParameters().map(\.0)
    #expect(ours == names, "parameter names differ from the PyTorch state_dict")
    for (name, p) in module.namedParameters() {
        let t = try f.tensor("w." + name)
        try #require(t.shape == p.shape, "\(name): fixture \(t.shape) vs module \(p.shape)")
        p.data = t
    }
}

/// Output and every gradient of `sum(out * r)` against the fixture (`out`, `grad.<name>`, `grad_x<i>`).
/// - Returns: worst relative error of the output and of the gradients, with the gradient's name.
func compareWithFixture(
    _ module: Module, _ f: Fixture, inputs: [Tensor], forward: ([Tensor]) throws -> Tensor
) throws -> (output: Double, gradient: Double, worstGradient: String) {
    let params = module.trainableParameters()
    let r = try f.tensor("r")
    let leaves = inputs.map { $0.requiringGradient() }
    var out = Tensor(0)
    let (_, grads) = try valueAndGradient(at: params) {
        out = try forward(leaves)
        return try (out * r).sum()
    }
    let inputGrads = try gradient(of: { xs in try (forward(xs) * r).sum() }, at: inputs)
    let outErr = relativeError(out.scalars, try f.tensor("out").scalars)
    // Relative error per gradient tensor, max|ours - ref| / max|ref|. A gradient that is zero in exact
    // arithmetic (a key-projection bias, which softmax cancels) is measured against 1% of the largest
    // gradient instead, since its float rounding noise has no scale of its own.
    var pairs: [(String, [Float], [Float])] = []
    for (name, _) in params {
        let g = try #require(grads[name], "no gradient for \(name)")
        pairs.append((name, g.scalars, try f.tensor("grad." + name).scalars))
    }
    for (i, g) in inputGrads.enumerated() {
        pairs.append(("x\(i)", g.scalars, try f.tensor("grad_x\(i)").scalars))
    }
    // Every gradient the fixture stores is compared: one for a frozen parameter or an input the test
    // does not pass fails here instead of going unchecked.
    let claimed = Set(f.tensors.keys.filter { $0.hasPrefix("grad.") || $0.hasPrefix("grad_") })
    let compared = Set(params.map { "grad." + $0.0 } + inputGrads.indices.map { "grad_x\($0)" })
    #expect(claimed == compared, "\(f.name): fixture gradients not compared \(claimed.subtracting(compared).sorted())")
    let scale = pairs.map { $0.2.map { abs(Double($0)) }.max() ?? 0 }.max() ?? 0
    var worst = 0.0, worstName = ""
    for (name, a, b) in pairs {
        let num = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
        let den = max(b.map { abs(Double($0)) }.max() ?? 0, 0.01 * scale)
        let e = den > 0 ? num / den : num
        if e > worst { (worst, worstName) = (e, name) }
    }
    return (outErr, worst, worstName)
}

/// Finite-difference check of d loss / d parameter on a few elements of every parameter.
/// - Returns: the worst |analytic - numeric| / (atol + rtol max(|a|, |n|)) (<= 1 passes) and where.
func parameterGradCheck(
    _ params: [(String, Parameter)], eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
    perParameter: Int = 4,
    _ loss: () throws -> Tensor
) throws -> (ratio: Double, at: String) {
    let (_, grads) = try valueAndGradient(at: params, loss)
    var worst = 0.0, at = ""
    for (name, p) in params {
        guard let g = grads[name] else { continue }
        let n = p.data.count
        let picks = Set((0..<perParameter).map { ($0 * 7919 + 13) % n })
        for i in picks {
            let base = p.data
            func lossAt(_ delta: Float) throws -> Double {
                var t = base
                t.withUnsafeMutableBufferPointer { $0[i] += delta }
                p.data = t
                defer { p.data = base }
                return Double(try noGrad { try loss() }.item())
            }
            let numeric = (try lossAt(eps) - lossAt(-eps)) / (2 * Double(eps))
            let analytic = Double(g.scalars[i])
            let ratio = abs(analytic - numeric) / (atol + rtol * max(abs(analytic), abs(numeric)))
            if ratio > worst {
                (worst, at) = (ratio, "\(name)[\(i)]: analytic \(analytic) numeric \(numeric)")
            }
        }
    }
    return (worst, at)
}

/// The small Chain-of-Sight used by the structural tests: an 8x8 grid, scales (8, 4), (4, 8), (2, 16)
/// (1, 4 and 16 windows; 4, 2 and 1 queries per window), two levels.
func smallChainOfSight(seed: UInt64 = 1) throws -> ChainOfSight {
    let config = ChainOfSightConfig(
        visionDim: 12, dim: 8, llmDim: 10, headDim: 4, mlpRatio: 2, grid: .square(8),
        scales: [
            WindowScale(windowSize: 8, queries: 4), WindowScale(windowSize: 4, queries: 8),
            WindowScale(windowSize: 2, queries: 16),
        ],
        featureLevels: [3, 5])
    let m = try ChainOfSight(config, seed: seed)
    randomizeParameters(m, seed: seed)
    return m
}


/// `[B, H*W, C]` features, uniform in [-1, 1).
func features(_ b: Int, _ grid: Grid, _ c: Int, seed: UInt64) -> Tensor {
    randomTensor([b, grid.count, c], seed: seed)
}

/// Adds `delta` to the features of patch (row, col) of every image.
func perturbPatch(_ x: Tensor, grid: Grid, row: Int, col: Int, delta: Float = 0.5) -> Tensor {
    var y = x
    let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
    y.withUnsafeMutableBufferPointer { p in
        for i in 0..<b {
            for j in 0..<c { p[(i * n + row * grid.width + col) * c + j] += delta * Float(j % 3 + 1) }
        }
    }
    return y
}

/// Output tokens of `[1, T, D]` as rows.
func tokenRows(_ t: Tensor) -> [[Float]] {
    let (n, d) = (t.shape[1], t.shape[2])
    let s = t.scalars
    return (0..<n).map { Array(s[($0 * d)..<(($0 + 1) * d)]) }
}
