import Foundation
import _CSightlineMPI

/// A failed collective: the rank it failed on, the operation and MPI's own message.
public struct CollectiveError: Error, CustomStringConvertible, Equatable {
    /// The rank of the process that saw the failure (-1 before MPI was initialised).
    public var rank: Int
    /// The operation (`MPI_Allreduce`, `dlopen libmpi`, ...).
    public var operation: String
    /// Why it failed.
    public var cause: String

    public init(rank: Int, operation: String, cause: String) {
        self.rank = rank
        self.operation = operation
        self.cause = cause
    }

    public var description: String { "rank \(rank): \(operation) failed: \(cause)" }
}

/// The processes of one MPI job (`MPI_COMM_WORLD`) and the collectives Sightline uses on them:
/// broadcast, all-reduce, reduce-scatter, all-gather, barrier, abort.
///
/// Open MPI is opened with `dlopen` only when the process was started by a launcher (`mpirun`,
/// `srun`; see `isLaunched`). Nothing links MPI, so a single process needs no MPI at build or run
/// time: `world()` returns nil and training runs on one process.
///
/// Calls are serialised by a lock (MPI is initialised with `MPI_THREAD_SERIALIZED`), so a
/// communication thread may run collectives while the main thread computes, as long as both sides
/// issue the same collectives in the same order on every rank.
///
/// Every buffer is float32 unless the method says otherwise; every collective must be called by all
/// ranks, in the same order, with the same counts.
public final class Communicator: @unchecked Sendable {
    /// This process's rank in `0..<size`.
    public let rank: Int
    /// Number of processes in the job.
    public let size: Int
    /// Ranks of the job on this machine (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`; else 1 per machine
    /// is assumed unknown and `size` is used).
    public let localSize: Int
    /// The library that was opened.
    public let library: String
    /// Whether MPI grants calls from more than one thread, one at a time (`MPI_THREAD_SERIALIZED` or more).
    public let serializedThreads: Bool
    private let lock = NSLock()

    /// Reductions of `allReduce`.
    public enum Reduction: Sendable {
        case sum
        /// The sum divided by `size`.
        case mean
        case max
        case min
    }

    /// Whether a launcher started this process: one of `OMPI_COMM_WORLD_SIZE`, `PMIX_RANK`, `PMI_RANK`,
    /// `PMI_SIZE` is set.
    public static var isLaunched: Bool { sl_mpi_launched() != 0 }

    private nonisolated(unsafe) static var shared: Result<Communicator?, CollectiveError>?
    private static let sharedLock = NSLock()

    /// The job this process belongs to: nil when no launcher started it (no MPI is loaded); otherwise
    /// Open MPI is loaded and initialised once, and finalised when the process exits normally.
    /// - Throws: `CollectiveError` when the process was launched but libmpi cannot be loaded or
    ///   initialised (the message says what to install).
    public static func world() throws -> Communicator? {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let shared { return try shared.get() }
        let made: Result<Communicator?, CollectiveError> = Result {
            guard isLaunched else { return nil }
            return try Communicator()
        }.mapError { $0 as! CollectiveError }
        shared = made
        return try made.get()
    }

    private init() throws {
        let report = sl_mpi_load()!
        guard report.pointee.loaded != 0 else {
            let cause = withUnsafeBytes(of: report.pointee.error) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            throw CollectiveError(rank: -1, operation: "dlopen libmpi", cause: cause)
        }
        library = withUnsafeBytes(of: report.pointee.library) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        var provided: Int32 = 0
        if sl_mpi_is_initialized() == 0 {
            let rc = sl_mpi_init(2, &provided)  // MPI_THREAD_SERIALIZED
            guard rc == 0 else {
                throw CollectiveError(rank: -1, operation: "MPI_Init_thread", cause: Self.message(rc))
            }
            // Finalise at a normal exit (mpirun treats a rank that exits without it as failed).
            atexit {
                if sl_mpi_is_initialized() != 0 && sl_mpi_is_finalized() == 0 { _ = sl_mpi_finalize() }
            }
        } else {
            provided = 2
        }
        serializedThreads = provided >= 2
        var r: Int32 = 0
        var s: Int32 = 0
        var rc = sl_mpi_rank(&r)
        if rc == 0 { rc = sl_mpi_size(&s) }
        guard rc == 0 else { throw CollectiveError(rank: -1, operation: "MPI_Comm_rank", cause: Self.message(rc)) }
        rank = Int(r)
        size = Int(s)
        localSize = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? Int(s)
    }

    static func message(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 640)
        sl_mpi_error_string(code, &buffer, buffer.count)
        return String(cString: buffer)
    }

    private func call(_ operation: String, _ body: () -> Int32) throws {
        lock.lock()
        let rc = body()
        lock.unlock()
        guard rc == 0 else { throw CollectiveError(rank: rank, operation: operation, cause: Self.message(rc)) }
    }

    // MARK: Collectives

    /// Copies rank `root`'s `buffer` into every other rank's `buffer` (same count everywhere).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws {
        try call("MPI_Bcast") { sl_mpi_bcast(buffer.baseAddress, Int64(buffer.count), SL_MPI_FLOAT, Int32(root)) }
    }

    /// Broadcast of raw bytes (same count everywhere).
    public func broadcast(bytes buffer: UnsafeMutableRawBufferPointer, root: Int = 0) throws {
        try call("MPI_Bcast") { sl_mpi_bcast(buffer.baseAddress, Int64(buffer.count), SL_MPI_BYTE, Int32(root)) }
    }

    /// Reduces `buffer` element-wise over all ranks, in place: afterwards every rank holds the result.
    /// `.mean` is the sum times `1 / size`.
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ reduction: Reduction = .sum) throws {
        try call("MPI_Allreduce") {
            sl_mpi_allreduce(nil, buffer.baseAddress, Int64(buffer.count), SL_MPI_FLOAT, Self.op(reduction))
        }
        if reduction == .mean {
            let f = 1 / Float(size)
            for i in buffer.indices { buffer[i] *= f }
        }
    }

    /// `allReduce` of float64 values (counters, loss sums).
    public func allReduce(_ values: inout [Double], _ reduction: Reduction = .sum) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { b in
            try call("MPI_Allreduce") { sl_mpi_allreduce(nil, b.baseAddress, Int64(n), SL_MPI_DOUBLE, Self.op(reduction)) }
        }
        if reduction == .mean { values = values.map { $0 / Double(size) } }
    }

    /// Sums `send` (`size x n` elements) over all ranks and leaves block `rank` of the sum,
    /// `send[rank * n ..< (rank + 1) * n]` summed, in `receive` (`n` elements).
    /// - Throws: `CollectiveError` when `send.count != size * receive.count`.
    public func reduceScatter(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>)
        throws
    {
        guard send.count == size * receive.count else {
            throw CollectiveError(
                rank: rank, operation: "MPI_Reduce_scatter_block",
                cause: "send has \(send.count) elements, expected size \(size) x receive \(receive.count)")
        }
        try call("MPI_Reduce_scatter_block") {
            sl_mpi_reduce_scatter_block(send.baseAddress, receive.baseAddress, Int64(receive.count), SL_MPI_FLOAT, SL_MPI_SUM)
        }
    }

    /// Concatenates every rank's `send` (`n` elements) into `receive` (`size x n`), in rank order.
    /// - Throws: `CollectiveError` when `receive.count != size * send.count`.
    public func allGather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>) throws {
        guard receive.count == size * send.count else {
            throw CollectiveError(
                rank: rank, operation: "MPI_Allgather",
                cause: "receive has \(receive.count) elements, expected size \(size) x send \(send.count)")
        }
        try call("MPI_Allgather") {
            sl_mpi_allgather(send.baseAddress, receive.baseAddress, Int64(send.count), SL_MPI_FLOAT)
        }
    }

    /// In-place all-gather: block `rank` of `buffer` (`size x n` elements) is this rank's part; afterwards
    /// every block holds its rank's part.
    public func allGather(inPlace buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard buffer.count % size == 0 else {
            throw CollectiveError(
                rank: rank, operation: "MPI_Allgather", cause: "\(buffer.count) elements do not split into \(size) blocks")
        }
        try call("MPI_Allgather") {
            sl_mpi_allgather(nil, buffer.baseAddress, Int64(buffer.count / size), SL_MPI_FLOAT)
        }
    }

    /// Every rank's bytes (of any length), in rank order.
    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        var lengths = [Double](repeating: 0, count: size)
        lengths[rank] = Double(bytes.count)
        try allReduce(&lengths, .sum)
        let longest = Int(lengths.max() ?? 0)
        guard longest > 0 else { return lengths.map { _ in [] } }
        var all = [UInt8](repeating: 0, count: longest * size)
        all.withUnsafeMutableBufferPointer { b in
            for (i, v) in bytes.enumerated() { b[rank * longest + i] = v }
        }
        try all.withUnsafeMutableBytes { b in
            try call("MPI_Allgather") { sl_mpi_allgather(nil, b.baseAddress, Int64(longest), SL_MPI_BYTE) }
        }
        return (0..<size).map { r in Array(all[(r * longest)..<(r * longest + Int(lengths[r]))]) }
    }

    /// Waits until every rank has called it.
    public func barrier() throws { try call("MPI_Barrier") { sl_mpi_barrier() } }

    /// Ends every process of the job: writes `rank <r>: <message>` to standard error, then calls
    /// `MPI_Abort` (Open MPI's launcher then stops the other ranks, even those blocked in a collective).
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("rank \(rank) of \(size): \(message); aborting the job\n".utf8))
        // No lock: another thread may be blocked inside a collective that will never complete.
        _ = sl_mpi_abort(code)
        exit(code)
    }

    static func op(_ r: Reduction) -> sl_mpi_op {
        switch r {
        case .sum, .mean: return SL_MPI_SUM
        case .max: return SL_MPI_MAX
        case .min: return SL_MPI_MIN
        }
    }
}
