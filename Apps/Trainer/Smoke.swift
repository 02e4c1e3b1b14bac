import ArgumentParser
import Foundation
import Tensor
import Training

/// Multiplies square matrices through Tensor and reports GFLOP/s and the BLAS kernel.
struct Smoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Multiply matrices through Tensor and print GFLOP/s and the active BLAS kernel.")

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Matrix side n (an n x n x n single-precision GEMM).")
    var size: Int = 2048

    @Option(help: "Timed repetitions (the best is reported).")
    var repeats: Int = 8

    func validate() throws {
        guard size > 0 else { throw ValidationError("--size must be positive") }
        guard repeats > 0 else { throw ValidationError("--repeats must be positive") }
    }

    func run() throws {
        let logger = try runtime.apply(label: "trainer.smoke")
        let report = try SmokeRun.gemm(size: size, repeats: repeats)
        logger.info("smoke: \(report)")
        print(report)
    }
}
