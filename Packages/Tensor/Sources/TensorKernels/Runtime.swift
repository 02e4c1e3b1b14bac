import _CSightlineBLAS
import Dispatch
import Foundation

/// Process-wide compute settings: the BLAS library, its CPU kernel, and the thread count shared by
/// OpenBLAS and Sightline's own kernels (so the two never oversubscribe the cores).
public enum ComputeRuntime {
    /// What the OpenBLAS loader did: the library, its active kernel and why that kernel was chosen.
    public struct BLASReport: Sendable, CustomStringConvertible {
        /// True when OpenBLAS was found and `cblas_sgemm` resolved.
        public var loaded: Bool
        /// The shared object that was opened (`libopenblas.so.0`).
        public var library: String
        /// OpenBLAS's active kernel (`openblas_get_corename()`), e.g. `Cooperlake`.
        public var kernel: String
        /// `openblas_get_config()`.
        public var config: String
        /// Why this kernel: the user's `OPENBLAS_CORETYPE`, or the cpuid features we read.
        public var reason: String
        /// When `loaded` is false: what failed.
        public var error: String
        /// Threads OpenBLAS uses now.
        public var threads: Int

        public var description: String {
            loaded
                ? "OpenBLAS kernel \(kernel), \(threads) thread(s) (\(reason)); \(config)"
                : "OpenBLAS not loaded: \(error)"
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var _threads: Int = {
        if let s = ProcessInfo.processInfo.environment["SIGHTLINE_NUM_THREADS"], let n = Int(s), n > 0 {
            return n
        }
        return Int(sl_available_cpus())
    }()
    nonisolated(unsafe) private static var blasThreadsApplied = false

    /// Loads OpenBLAS if needed (choosing its kernel from the CPU) and reports what is active.
    public static func blas() -> BLASReport {
        let r = sl_blas_load()!.pointee
        ensureBLASThreads()
        func str<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return BLASReport(
            loaded: r.loaded != 0, library: str(r.library), kernel: str(r.corename),
            config: str(r.config), reason: str(r.reason), error: str(r.error),
            threads: Int(sl_blas_get_threads()))
    }

    /// Throws when OpenBLAS could not be loaded, with what to install; ops that reach a GEMM call it
    /// first so a machine without the library gets an error instead of a trap.
    /// - Throws: `BLAS.Unavailable` naming the loader's error and the package to install.
    public static func requireBLAS() throws {
        guard sl_blas_load()!.pointee.loaded == 0 else { return }
        throw BLAS.Unavailable(
            description: "OpenBLAS is not available: \(blas().error). Install OpenBLAS (Debian/Ubuntu: "
                + "apt-get install libopenblas0, or libopenblas-dev to build; Fedora: dnf install openblas), "
                + "or point SIGHTLINE_OPENBLAS at the library file.")
    }

    /// Sets `threads`, rejecting a count below 1.
    /// - Throws: `ComputeRuntime.InvalidThreads` naming the value.
    public static func setThreads(_ n: Int) throws {
        guard n > 0 else { throw InvalidThreads(value: n) }
        threads = n
    }

    /// A thread count below 1.
    public struct InvalidThreads: Error, CustomStringConvertible {
        public var value: Int
        public var description: String { "the thread count must be at least 1, got \(value)" }
    }

    /// The number of compute threads used by OpenBLAS and by Sightline's kernels.
    ///
    /// Defaults to the CPUs this process may run on (or `SIGHTLINE_NUM_THREADS`). Setting it applies
    /// to both at once.
    ///
    /// `threadsOverride`, when set for the current task, is what this returns there instead.
    public static var threads: Int {
        get { threadsOverride ?? lock.withLock { _threads } }
        set {
            precondition(newValue > 0, "thread count must be positive (use setThreads(_:) for user input)")
            lock.withLock {
                _threads = newValue
                blasThreadsApplied = false
            }
            ensureBLASThreads()
        }
    }

    /// A thread count for Sightline's kernels in the current task only, leaving the process-wide
    /// setting (and other tasks) alone: `ComputeRuntime.$threadsOverride.withValue(1) { ... }`. Kernel
    /// chunking, and so the summation order of reductions, follows it; OpenBLAS keeps its own setting.
    @TaskLocal public static var threadsOverride: Int?

    /// Applies the thread setting to OpenBLAS once per change (an explicit OPENBLAS_NUM_THREADS wins
    /// at load; a later `threads =` overrides it).
    @usableFromInline
    static func ensureBLASThreads() {
        if lock.withLock({ blasThreadsApplied }) { return }
        let n = lock.withLock { () -> Int in
            blasThreadsApplied = true; return _threads
        }
        sl_blas_set_threads(Int32(n))
    }

    /// Runs `body(i)` for `i` in `0..<count`, split into at most `threads` contiguous chunks.
    /// `body` receives a half-open range. Runs inline when `count` is below `grain`.
    @inlinable
    public static func parallelFor(_ count: Int, grain: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
        let t = threads
        if t <= 1 || count < 2 * grain {
            if count > 0 { body(0..<count) }
            return
        }
        let chunks = min(t, (count + grain - 1) / grain)
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per
                let hi = min(count, lo + per)
                if lo < hi { body(lo..<hi) }
            }
        }
    }
}
