import Foundation
import Logging
import TensorFiles

/// Appends one JSON object per record to `metrics.jsonl`: `{"stage": ..., "step": ..., "time": ...,
/// <scalar>: <value>, ...}` (non-finite values written as null).
public final class JSONLMetricsSink: MetricsSink {
    public let path: String
    private let handle: FileHandle

    /// Opens (or creates) `path` for appending.
    public init(path: String) throws {
        // Created when missing, through the one durable writer.
        if !FileManager.default.fileExists(atPath: path) { try DurableFile.append([], to: path) }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw ConfigError(keyPath: "", source: path, "cannot open the metrics file")
        }
        try h.seekToEnd()
        self.path = path
        handle = h
    }

    deinit { try? handle.close() }

    public func record(stage: String, step: Int, scalars: [String: Double]) throws {
        var object: [String: Any] = ["stage": stage, "step": step, "time": Date().timeIntervalSince1970]
        for (k, v) in scalars { object[k] = v.isFinite ? v : NSNull() }
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    public func flush() throws { try handle.synchronize() }

    /// Reads a `metrics.jsonl` back: one (stage, step, scalars) per line.
    public static func read(path: String) throws -> [(stage: String, step: Int, scalars: [String: Double])] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").enumerated().map { i, line in
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let stage = o["stage"] as? String, let step = o["step"] as? Int
            else { throw ConfigError(keyPath: "", source: path, line: i + 1, "not a metrics record") }
            var scalars: [String: Double] = [:]
            for (k, v) in o where k != "stage" && k != "step" && k != "time" {
                scalars[k] = (v as? NSNumber)?.doubleValue ?? .nan
            }
            return (stage, step, scalars)
        }
    }
}

/// Every metrics output of a run folder behind one `MetricsSink`: `metrics.jsonl`, TensorBoard event
/// files (`tensorboard/<stage>/`), the progress line, swift-log lines, and `loss.svg` / `lr.svg`
/// redrawn at each `flush()` (the loop flushes at every evaluation and at the end).
///
/// Scalar names the progress line and plots know: `loss`, `z_loss`, `lr` (or `learning_rate`),
/// `grad_norm`, `tokens_per_s` / `tokens_per_second`, `images_per_s` / `images_per_second`, and
/// `eval_loss` (plotted with the training loss).
public final class RunMetrics: MetricsSink {
    public let directory: String
    public let settings: MetricsSection
    public var logger: Logger
    private let jsonl: JSONLMetricsSink
    private var tensorboard: [String: TensorBoardWriter] = [:]
    private var progress: [String: ProgressLine] = [:]
    private var totals: [String: Int] = [:]
    private var history: [String: [String: [(x: Double, y: Double)]]] = [:]
    private var stageOrder: [String] = []
    private let write: ((String) -> Void)?

    /// - Parameters:
    ///   - directory: the run folder (created when missing).
    ///   - write: where progress text goes (standard error by default).
    public init(
        directory: String, settings: MetricsSection = .init(), logger: Logger = Logger(label: "sightline.training"),
        write: ((String) -> Void)? = nil
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.settings = settings
        self.logger = logger
        self.write = write
        jsonl = try JSONLMetricsSink(path: directory + "/metrics.jsonl")
    }

    /// Announces a stage and its step count (for the progress line's step/total and ETA).
    public func begin(stage: String, totalSteps: Int) {
        totals[stage] = totalSteps
        progress[stage] = ProgressLine(stage: stage, totalSteps: totalSteps, mode: settings.progress, write: write)
        if !stageOrder.contains(stage) { stageOrder.append(stage) }
        logger.info("stage \(stage): \(totalSteps) steps")
    }

    public func record(stage: String, step: Int, scalars: [String: Double]) throws {
        try jsonl.record(stage: stage, step: step, scalars: scalars)
        if settings.tensorboard {
            if tensorboard[stage] == nil {
                tensorboard[stage] = try TensorBoardWriter(directory: directory + "/tensorboard/" + stage)
            }
            try tensorboard[stage]!.add(scalars: scalars.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, step: step)
        }
        if !stageOrder.contains(stage) { stageOrder.append(stage) }
        for (k, v) in scalars { history[stage, default: [:]][k, default: []].append((Double(step), v)) }
        if scalars["loss"] != nil {
            if progress[stage] == nil { begin(stage: stage, totalSteps: step) }
            progress[stage]!.report(step: step, scalars: scalars)
        }
        if scalars.keys.contains(where: { $0.hasPrefix("eval_") }) {
            let text = scalars.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.5g", $0.value))" }
            logger.info("\(stage) step \(step): \(text.joined(separator: " "))")
        }
    }

    /// Flushes the files and redraws the plots.
    public func flush() throws {
        try jsonl.flush()
        for (_, w) in tensorboard { try w.flush() }
        if settings.plots { try drawPlots() }
    }

    /// Ends a stage's progress line.
    public func finish(stage: String) throws {
        progress[stage]?.finish()
        try flush()
    }

    /// Writes `loss.svg` (training and evaluation loss of every stage) and `lr.svg`.
    public func drawPlots() throws {
        var loss: [SVGPlot.Series] = [], lr: [SVGPlot.Series] = []
        for stage in stageOrder {
            let h = history[stage] ?? [:]
            if let p = h["loss"] { loss.append(.init(name: "\(stage) train", points: p)) }
            if let p = h["eval_loss"] { loss.append(.init(name: "\(stage) eval", points: p)) }
            if let p = h["lr"] ?? h["learning_rate"] { lr.append(.init(name: stage, points: p)) }
        }
        try DurableFile.write(
            SVGPlot.render(title: "Loss", xLabel: "step", yLabel: "loss", series: loss), to: directory + "/loss.svg")
        try DurableFile.write(
            SVGPlot.render(title: "Learning rate", xLabel: "step", yLabel: "lr", series: lr), to: directory + "/lr.svg")
    }
}
