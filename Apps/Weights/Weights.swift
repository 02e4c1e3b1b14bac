import ArgumentParser
import Checkpoint
import TensorFiles

@main
struct Weights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Inspect and convert Sightline weights (HDF5), safetensors and PyTorch state dicts.",
        subcommands: [Info.self, Inspect.self, Convert.self, Import.self, Probe.self])
}

extension WeightDType: @retroactive ExpressibleByArgument {}
