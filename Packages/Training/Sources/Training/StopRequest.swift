import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A request to stop a run after the current step (its checkpoint is saved and `run()` returns
/// normally). Set by SIGINT/SIGTERM while `listenForSignals()` is active, or by `request()`.
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var signalName: String?
    private var sources: [DispatchSourceSignal] = []

    public init() {}

    /// Whether a stop was requested.
    public var isRequested: Bool { lock.withLock { flag } }
    /// The signal that requested it ("SIGTERM", "SIGINT"), or nil.
    public var receivedSignal: String? { lock.withLock { signalName } }

    /// Requests a stop.
    public func request(signal: String? = nil) {
        lock.withLock {
            flag = true
            if signalName == nil { signalName = signal }
        }
    }

    /// Routes SIGINT and SIGTERM to `request` (instead of terminating the process) until
    /// `stopListening()`.
    public func listenForSignals() {
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.request(signal: name) }
            source.resume()
            sources.append(source)
        }
    }

    /// Restores the default actions of SIGINT and SIGTERM.
    public func stopListening() {
        for s in sources { s.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
