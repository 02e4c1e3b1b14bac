import ArgumentParser
import Training

/// Options of the stage subcommands (`clip`, `pretrain`, `scale-tokens`, `finetune`).
struct StageOptions: ParsableArguments {
    @Option(help: "The run's YAML configuration (default: every default; see `trainer config --print`).")
    var config: String?

    @Option(name: .customLong("set"), help: "Override one key, `key.path=value` (repeatable).")
    var overrides: [String] = []

    @Option(help: "`auto` (continue from the stage's latest checkpoint), `never`, or a checkpoint file.")
    var resume: String?

    @Option(help: "The run folder (overrides run.output).")
    var output: String?

    /// The resolved configuration.
    func load() throws -> TrainingConfig {
        try TrainingConfig.resolve(file: config, overrides: overrides, resume: resume, output: output)
    }
}
