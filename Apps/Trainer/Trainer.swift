import ArgumentParser
import Logging
import Tensor
import Training

@main
struct Trainer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer",
        abstract: "Pre-train and fine-tune multimodal LLMs with Chain-of-Sight bridges.",
        subcommands: [
            DemoCommand.self, Clip.self, Pretrain.self, ScaleTokensCommand.self, Finetune.self, Eval.self,
            Generate.self, DataCommand.self, ConfigCommand.self, Smoke.self, ProbeData.self,
        ])

    /// ArgumentParser's entry point, plus: under `mpirun`, an error on one rank ends every rank.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) != .success { DataParallel.failJob(error) }
            exit(withError: error)
        }
    }
}

/// Options every subcommand shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Compute threads for OpenBLAS and Sightline's kernels (default: available cores).")
    var threads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// Applies the thread setting, boots logging, and logs the BLAS kernel in use.
    /// - Throws: `ComputeRuntime.InvalidThreads` for a thread count below 1.
    func apply(label: String) throws -> Logger {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        if let threads { try ComputeRuntime.setThreads(threads) }
        logger.info("\(ComputeRuntime.blas())")
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
