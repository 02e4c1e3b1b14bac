import ArgumentParser
import Checkpoint
import TensorFiles

@main
struct Weights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Inspect, convert, import and export Sightline weights (HDF5), safetensors and PyTorch state dicts.",
        subcommands: [Info.self, Inspect.self, Convert.self, Import.self, Export.self, Probe.self])
}

extension WeightDType: @retroactive ExpressibleByArgument {}
