import ArgumentParser
import Training

/// `trainer demo`: the Chain-of-Sight recipe in miniature on the built-in synthetic world.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Pre-train at 32 visual tokens, scale them, fine-tune with LoRA, evaluate; print the table.",
        discussion: """
            Writes <output>/summary.json (arms and pass criteria), loss.svg and accuracy.svg. --compare adds \
            Chain-of-Sight at the fine-tuning token count throughout and the MLP projection of all patch \
            tokens; --quick is a seconds-long pipeline check with tiny sizes (its accuracy means nothing).
            """)

    @Flag(help: "Also train the two baselines.")
    var compare = false

    @Flag(help: "Tiny sizes and a few steps: checks the pipeline, not the accuracy.")
    var quick = false

    @Option(help: "The run folder.")
    var output: String = "runs/demo"

    @Option(name: .customLong("set"), help: "Override one key of the demo's configuration, `key.path=value` (repeatable).")
    var overrides: [String] = []

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let logger = try runtime.apply(label: "trainer.demo")
        _ = try Demo.run(quick: quick, compare: compare, output: output, overrides: overrides, logger: logger)
    }
}
