import ArgumentParser
import Checkpoint
import Tensor

/// Prints the linked libraries and the active BLAS kernel.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the HDF5 and BLAS libraries in use.")

    func run() throws {
        let v = HDF5Library.version
        print("HDF5 \(v.major).\(v.minor).\(v.release)")
        print(ComputeRuntime.blas())
    }
}
