import Foundation
import SightlineTestSupport
import Tensor
import Testing

// Parity with PyTorch: forward values (and gradients of sum(out * r)) of the Tensor ops against the
// fixtures written by scripts/make_fixtures.py (PyTorch, float64 references stored at float32
// precision). Relative error is max|ours - ref| / max|ref| per tensor.
//
// Tolerances: forward <= 1e-5 relative for every op. Gradients <= 1e-5 relative as well unless a
// suite states otherwise (with the reason). Set SIGHTLINE_PARITY_VERBOSE=1 to print every measured
// error.

/// Forward tolerance (relative) for every op.
let parityForwardTolerance = 1e-5

private let verbose = ProcessInfo.processInfo.environment["SIGHTLINE_PARITY_VERBOSE"] != nil

/// Compares `ours` with the fixture tensor `key`: same shape, relative error within `tol`. Returns the
/// measured error.
@discardableResult
func expectParity(
    _ ours: Tensor, _ fx: Fixture, _ key: String, tol: Double = parityForwardTolerance,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> Double {
    let ref = try fx.tensor(key)
    #expect(ours.shape == ref.shape, "\(fx.name).\(key): shape \(ours.shape) vs PyTorch \(ref.shape)", sourceLocation: sourceLocation)
    guard ours.shape == ref.shape else { return .infinity }
    let err = relativeError(ours.scalars, ref.scalars)
    let torch32 = fx.torchFloat32Error[key].map { String(format: "%.2e", $0) } ?? "-"
    if verbose { print("parity \(fx.name).\(key): relative error \(String(format: "%.3e", err)) (torch float32: \(torch32))") }
    #expect(
        err <= tol,
        "\(fx.name).\(key): relative error \(String(format: "%.3e", err)) > \(String(format: "%.0e", tol)) (PyTorch float32 itself: \(torch32))",
        sourceLocation: sourceLocation)
    return err
}

/// Checks `f(inputs)` against the fixture's `out` (and `outputKeys` beyond it when `f` returns
/// several), then the gradients of `sum(out * r)` with respect to `inputs` against `grad_<name>`.
@discardableResult
func checkParity(
    _ fx: Fixture, inputs names: [String], gradTol: Double = parityForwardTolerance,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ f: ([Tensor]) throws -> Tensor
) throws -> (forward: Double, gradient: Double) {
    let inputs = try names.map { try fx.tensor($0) }
    let y = try noGrad { try f(inputs) }
    let fwd = try expectParity(y, fx, "out", sourceLocation: sourceLocation)
    var gradErr = 0.0
    guard let r = fx.tensors["r"] else { return (fwd, gradErr) }
    let grads = try gradient(of: { xs in try (f(xs) * r).sum() }, at: inputs)
    for (name, g) in zip(names, grads) where fx.tensors["grad_" + name] != nil {
        gradErr = max(gradErr, try expectParity(g, fx, "grad_" + name, tol: gradTol, sourceLocation: sourceLocation))
    }
    return (fwd, gradErr)
}

// MARK: - Activations and the softmax family

@Suite struct ParityActivations {
    @Test(arguments: ["act_gelu", "act_gelu_tanh", "act_quick_gelu", "act_silu", "act_softplus", "act_softplus_beta2_t3"])
    func activation(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let f: (Tensor) throws -> Tensor
        switch fx.op {
        case "gelu": f = { gelu($0) }
        case "gelu_tanh": f = { gelu($0, approximate: true) }
        case "quick_gelu": f = { quickGelu($0) }
        case "silu": f = { silu($0) }
        case "softplus":
            let beta = Float(try fx.double("beta")), threshold = Float(try fx.double("threshold"))
            f = { softplus($0, beta: beta, threshold: threshold) }
        default: throw FixtureError("unknown activation \(fx.op)")
        }
        try checkParity(fx, inputs: ["x"]) { try f($0[0]) }
    }

    @Test(arguments: ["softmax_last", "softmax_axis1", "softmax_large", "log_softmax_last", "log_softmax_axis1", "log_softmax_large"])
    func softmaxFamily(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let axis = try fx.int("axis")
        let log = fx.op == "log_softmax"
        try checkParity(fx, inputs: ["x"]) { xs in
            log ? try xs[0].logSoftmax(axis: axis) : try xs[0].softmax(axis: axis)
        }
    }

    @Test(arguments: ["logsumexp_last", "logsumexp_axes12_keep", "logsumexp_large"])
    func logSumExp(_ name: String) throws {
        let fx = try loadFixtureCase(name)
        let axes = try fx.intArray("axes"), keep = try fx.bool("keep_dim")
        try checkParity(fx, inputs: ["x"]) { xs in try xs[0].logSumExp(axes: axes, keepDim: keep) }
    }
}

// MARK: - Fixture loader

@Suite struct ParityFixtures {
    @Test func loaderReadsTensorsIntsAndParameters() throws {
        let fx = try loadFixtureCase("cross_entropy_ignore_smoothing_zloss")
        #expect(fx.op == "cross_entropy")
        let logits = try fx.tensor("logits")
        let targets = try fx.indexTensor("targets")
        #expect(logits.shape == [10, 13])
        #expect(targets.shape == [10])
        #expect(targets.values.filter { $0 == -100 }.count == 3)
        #expect(try fx.int("count") == 7)
        #expect(try fx.double("label_smoothing") == 0.1)
        let interp = try loadFixtureCase("interpolate_nearest_scale")
        #expect(try interp.optionalIntPair("size") == nil)
        #expect(try interp.optionalDoublePair("scale_factor").map { [$0.0, $0.1] } == [1.7, 0.6])
        #expect(try interp.bool("antialias") == false)
        #expect(try loadFixture("conv2d_groups1")["weight"]?.shape == [4, 3, 3, 3])
        #expect(throws: FixtureError.self) { try loadFixtureCase("no_such_fixture") }
    }

    @Test func everyFixtureDecodes() throws {
        let names = try fixtureNames(prefix: "")
        #expect(names.count >= 90, "found \(names.count) fixtures in \(fixtureDirectory().path)")
        for name in names {
            let fx = try loadFixtureCase(name)
            #expect(fx.tensors["out"] != nil, "\(name) has no output")
        }
    }
}
