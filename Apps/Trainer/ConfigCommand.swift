import ArgumentParser
import Training

extension Stage: ExpressibleByArgument {}

/// `trainer config --print [--stage NAME]`: every default of the run configuration.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Print every default of the run configuration as YAML.")

    @Flag(help: "Print the defaults.")
    var print = false

    @Option(help: "Only this stage's section: clip, pretrain, scale-tokens, finetune.")
    var stage: Stage?

    func validate() throws {
        guard print else { throw ValidationError("nothing to do: pass --print") }
    }

    func run() throws {
        Swift.print(try TrainingConfig.defaultsYAML(stage: stage), terminator: "")
    }
}
