import Foundation

/// The one-line progress report of a stage: stage, step/total, loss, z-loss, lr, grad norm, tokens/s,
/// images/s, ETA and peak resident memory. On a terminal it is redrawn in place (`\r`); otherwise each
/// report is its own line.
public final class ProgressLine {
    public let stage: String
    public let totalSteps: Int
    /// Redraw in place (`\r`, no newline until `finish()`).
    public let inPlace: Bool
    private let write: (String) -> Void
    private var start: Double?
    private var startStep = 0
    private var lastWidth = 0

    /// - Parameters:
    ///   - mode: `auto` (in place when standard error is a terminal), `terminal`, `plain` or `off`.
    ///   - write: where the text goes (standard error by default).
    public init(
        stage: String, totalSteps: Int, mode: String = "auto",
        write: ((String) -> Void)? = nil
    ) {
        self.stage = stage
        self.totalSteps = totalSteps
        switch mode {
        case "terminal": inPlace = true
        case "plain", "off": inPlace = false
        default: inPlace = isatty(2) != 0
        }
        if mode == "off" {
            self.write = { _ in }
        } else {
            self.write = write ?? { FileHandle.standardError.write(Data($0.utf8)) }
        }
    }

    /// The text of one report (no line ending).
    /// - Parameters:
    ///   - elapsed: seconds since the first reported step; `stepsDone` steps since then.
    public static func format(
        stage: String, step: Int, total: Int, scalars: [String: Double], elapsed: Double?, stepsDone: Int,
        peakRSSBytes: Int?
    ) -> String {
        var parts = ["\(stage) \(step)/\(total)"]
        // Both spellings: the short ones and the trainer's (`learning_rate`, `tokens_per_second`, ...).
        func add(_ keys: [String], _ label: String, _ f: String) {
            if let v = keys.lazy.compactMap({ scalars[$0] }).first, v.isFinite {
                parts.append("\(label) " + String(format: f, v))
            }
        }
        add(["loss"], "loss", "%.4f")
        add(["z_loss"], "z", "%.2e")
        add(["lr", "learning_rate"], "lr", "%.2e")
        add(["grad_norm"], "gnorm", "%.3f")
        add(["tokens_per_s", "tokens_per_second"], "tok/s", "%.0f")
        add(["images_per_s", "images_per_second"], "img/s", "%.1f")
        if let e = elapsed, stepsDone > 0 {
            let eta = e / Double(stepsDone) * Double(max(total - step, 0))
            parts.append("eta " + formatDuration(eta))
        }
        if let rss = peakRSSBytes { parts.append(String(format: "rss %.0fMiB", Double(rss) / 1_048_576)) }
        return parts.joined(separator: " | ")
    }

    /// `1h02m`, `3m05s`, `12s`.
    public static func formatDuration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        if t >= 3600 { return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) }
        if t >= 60 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return "\(t)s"
    }

    /// Reports `step`.
    public func report(step: Int, scalars: [String: Double], now: Double = Date().timeIntervalSince1970) {
        if start == nil {
            start = now
            startStep = step
        }
        let line = Self.format(
            stage: stage, step: step, total: totalSteps, scalars: scalars, elapsed: now - start!,
            stepsDone: step - startStep, peakRSSBytes: peakResidentBytes())
        if inPlace {
            let pad = max(0, lastWidth - line.count)
            write("\r" + line + String(repeating: " ", count: pad))
            lastWidth = line.count
        } else {
            write(line + "\n")
        }
    }

    /// Ends an in-place line.
    public func finish() {
        if inPlace && lastWidth > 0 { write("\n") }
        lastWidth = 0
    }
}

/// The process's peak resident set size (`VmHWM` of `/proc/self/status`), or nil where there is none.
public func peakResidentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
    }
    return nil
}
