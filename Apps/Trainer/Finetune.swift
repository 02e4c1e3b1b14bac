import ArgumentParser
import Training

/// `trainer finetune`: Fine-tune with LoRA on the world's questions.
struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune", abstract: "Fine-tune with LoRA on the world's questions.")

    @OptionGroup var stage: StageOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let logger = try runtime.apply(label: "trainer.finetune")
        let config = try stage.load()
        let r = try FinetuneStage.run(config: config, output: config.run.output, logger: logger)
        // Data parallel: every rank trains, rank 0 reports.
        guard DataParallel.isRankZero else { return }
        print("finetune: \(r.steps) steps, final loss \(r.finalLoss); wrote \(r.directory)")
    }
}
