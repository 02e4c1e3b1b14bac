import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The result of a child process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var signaled: Bool
    public var timedOut: Bool
    public var stdout: String
    public var stderr: String

    public init(status: Int32, signaled: Bool, timedOut: Bool, stdout: String, stderr: String) {
        self.status = status
        self.signaled = signaled
        self.timedOut = timedOut
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs `executable` with `arguments` (in `directory` when given, with `environment` added to this
/// process's), killing it after `timeout` seconds.
public func runProcess(
    _ executable: String, _ arguments: [String], in directory: URL? = nil, timeout: Double = 120,
    environment: [String: String] = [:]
) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = directory }
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
    return ProcessResult(
        status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal, timedOut: timedOut,
        stdout: String(decoding: outBox.data, as: UTF8.self),
        stderr: String(decoding: errBox.data, as: UTF8.self))
}

/// A product executable built next to the running test bundle (the build directory holds both), or
/// the path in the environment variable `override` when set; nil when neither exists.
public func builtExecutable(_ name: String, override: String? = nil) -> String? {
    if let override, let env = ProcessInfo.processInfo.environment[override] { return env }
    let exe =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // The bundle may be a directory (.../Foo.xctest/Contents/MacOS) on macOS.
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}
