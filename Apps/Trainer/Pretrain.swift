import ArgumentParser
import Training

/// `trainer pretrain`: Pre-train the multimodal model (few visual tokens) on the 45/45/10 mixture.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain", abstract: "Pre-train the multimodal model (few visual tokens) on the 45/45/10 mixture.")

    @OptionGroup var stage: StageOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let logger = try runtime.apply(label: "trainer.pretrain")
        let config = try stage.load()
        let r = try PretrainStage.run(config: config, output: config.run.output, logger: logger)
        // Data parallel: every rank trains, rank 0 reports.
        guard DataParallel.isRankZero else { return }
        print("pretrain: \(r.steps) steps, final loss \(r.finalLoss), \(r.visualTokens) visual tokens; wrote \(r.directory)")
    }
}
