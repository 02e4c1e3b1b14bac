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

    /// What a finished process printed.
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// Whether it was killed at the timeout.
        public var timedOut: Bool
        /// stdout then stderr, for failure messages.
        public var output: String { stdout + stderr }
    }

    /// Runs the interpreter with `arguments` (a script path or `-c CODE` first), killing it after
    /// `timeout` seconds.
    public static func run(_ arguments: [String], timeout: Double = 300, environment: [String: String] = [:])
        throws -> Result
    {
        let p = Process()
        if interpreter.contains("/") {
            p.executableURL = URL(fileURLWithPath: interpreter)
            p.arguments = arguments
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [interpreter] + arguments
        }
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box(), errBox = Box()
        let group = DispatchGroup()
        for (box, pipe) in [(outBox, out), (errBox, err)] {
            group.enter()
            DispatchQueue.global().async {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline {
                kill(p.processIdentifier, SIGKILL)
                timedOut = true
                break
            }
            usleep(2000)
        }
        p.waitUntilExit()
        group.wait()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
            stderr: String(decoding: errBox.data, as: UTF8.self), timedOut: timedOut)
    }
}
