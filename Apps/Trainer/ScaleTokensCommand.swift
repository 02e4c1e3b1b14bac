import ArgumentParser
import Training

/// `trainer scale-tokens`: Scale the pre-trained connector's visual tokens (compound scaling; no training).
struct ScaleTokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale-tokens", abstract: "Scale the pre-trained connector's visual tokens (compound scaling; no training).")

    @OptionGroup var stage: StageOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        _ = try runtime.apply(label: "trainer.scale-tokens")
        let config = try stage.load()
        let r = try ScaleTokensStage.run(config: config, output: config.run.output)
        print("scale-tokens: \(r.tokens) visual tokens; wrote \(r.directory)")
    }
}
