import ArgumentParser
import Logging
import Tensor

@main
struct Trainer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer",
        abstract: "Pre-train and fine-tune multimodal LLMs with Chain-of-Sight bridges.",
        subcommands: [Smoke.self, ProbeData.self])
}

/// Options every subcommand shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Compute threads for OpenBLAS and Sightline's kernels (default: available cores).")
    var threads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// Applies the thread setting, boots logging, and logs the BLAS kernel in use.
    func apply(label: String) -> Logger {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        if let threads { ComputeRuntime.threads = threads }
        logger.info("\(ComputeRuntime.blas())")
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
