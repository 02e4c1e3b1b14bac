import ArgumentParser
import Training

/// `trainer clip`: Pre-train the vision tower contrastively on the synthetic world's captions.
struct Clip: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip", abstract: "Pre-train the vision tower contrastively on the synthetic world's captions.")

    @OptionGroup var stage: StageOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        _ = try runtime.apply(label: "trainer.clip")
        let config = try stage.load()
        let r = try ClipStage.run(config: config, output: config.run.output)
        print("clip: eval loss \(r.evalLossBefore) -> \(r.evalLossAfter); wrote \(r.directory)")
    }
}
