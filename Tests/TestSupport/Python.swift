import Foundation
import Testing

/// The one rule for tests that check our files with Python (h5py, safetensors, torch, transformers,
/// PEFT, tensorboard): the interpreter is `SIGHTLINE_PYTHON` when set, else `python3` on `PATH` (the
/// interpreter `scripts/setup.sh` installs the packages into).
///
/// A test that needs Python declares it with a trait, so a missing package shows as a skip with its
/// reason, never as a pass:
///
/// ```swift
/// @Test(Python.requires("torch", "transformers")) func transformersLoadsOurExport() throws { ... }
/// ```
///
/// Under CI (`CI=true`) `scripts/test.sh` fails the run when any test was skipped, so every interop
/// test executes there.
public enum Python {
    /// The interpreter: `SIGHTLINE_PYTHON`, else `python3` found on `PATH`.
    public static let interpreter: String = {
        if let p = ProcessInfo.processInfo.environment["SIGHTLINE_PYTHON"], !p.isEmpty { return p }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(dir)/python3"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "python3"
    }()

    nonisolated(unsafe) private static var cache: [String: Bool] = [:]
    private static let lock = NSLock()

    /// Whether the interpreter runs and imports every module in `modules` (cached per module).
    public static func has(_ modules: [String]) -> Bool {
        modules.allSatisfy { module in
            lock.lock()
            if let known = cache[module] {
                lock.unlock()
                return known
            }
            lock.unlock()
            let ok = (try? run(["-c", "import \(module)"], timeout: 120))?.status == 0
            lock.lock()
            cache[module] = ok
            lock.unlock()
            return ok
        }
    }

    /// `.enabled(if:)` for a test or suite that needs the interpreter with `modules` importable; the
    /// skip reason names the interpreter and the modules.
    public static func requires(_ modules: String...) -> ConditionTrait {
        let names = modules.isEmpty ? ["sys"] : modules
        return .enabled(
            if: has(names),
            Comment(rawValue: "needs \(interpreter) with \(names.joined(separator: ", ")) (scripts/setup.sh installs them; SIGHTLINE_PYTHON overrides)"))
    }

    /// What a finished process printed (`output` is stdout then stderr, for failure messages).
    public typealias Result = ProcessResult

    /// Runs the interpreter with `arguments` (a script path or `-c CODE` first), killing it after
    /// `timeout` seconds.
    public static func run(_ arguments: [String], timeout: Double = 300, environment: [String: String] = [:])
        throws -> Result
    {
        interpreter.contains("/")
            ? try runProcess(interpreter, arguments, timeout: timeout, environment: environment)
            : try runProcess("/usr/bin/env", [interpreter] + arguments, timeout: timeout, environment: environment)
    }
}

extension ProcessResult {
    /// stdout then stderr.
    public var output: String { stdout + stderr }
}
