import ArgumentParser
import Foundation
import Language
import Training

/// `trainer generate`: answers a prompt about an image with a trained stage folder.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a prompt about an image with a trained model (a stage folder, e.g. <run>/finetune).")

    @Option(help: "A stage folder holding vision/, connector/ and language/.")
    var checkpoint: String

    @Option(help: "A PNG or JPEG image.")
    var image: String

    @Option(help: "The question or instruction.")
    var prompt: String

    @Option(help: "New tokens at most.")
    var maxNewTokens: Int = 16

    @Option(help: "0 is greedy; otherwise logits are divided by it before sampling.")
    var temperature: Float = 0

    @Option(help: "Keep only the k most likely tokens (0: all).")
    var topK: Int = 0

    @Option(help: "Keep the most likely tokens up to this probability mass (1: all).")
    var topP: Float = 1

    @Option(help: "The sampler's seed.")
    var seed: UInt64 = 0

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive, got \(maxNewTokens)") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be at least 0, got \(temperature)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be at least 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
    }

    func run() throws {
        _ = try runtime.apply(label: "trainer.generate")
        let options = GenerationOptions(
            maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, topP: topP, seed: seed)
        _ = try ImageGeneration.run(checkpoint: checkpoint, image: image, prompt: prompt, options: options) { word in
            Swift.print(word, terminator: " ")
            fflush(stdout)
        }
        Swift.print()
    }
}
