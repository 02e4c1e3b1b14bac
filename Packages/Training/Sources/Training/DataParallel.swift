import Checkpoint
import Collectives
import Dispatch
import Foundation
import Layers
import Optim
import Tensor

/// Data-parallel settings of a run (used only when the process was started by an MPI launcher).
public struct DataParallelConfig: Codable, Equatable, Sendable {
    /// Gradients are all-reduced in buckets of about this many MiB (float32), in reverse registration
    /// order (roughly the order backward finishes them).
    public var bucketMegabytes: Double
    /// Start each bucket's all-reduce, on a communication thread, as soon as its gradients are final
    /// (the autodiff's gradient-ready hook), overlapping the rest of the backward pass. Off: all buckets
    /// after backward.
    public var overlap: Bool
    /// ZeRO stage 1: each rank keeps the AdamW moments of its share of the parameters only
    /// (reduce-scatter of the gradients, update of the share, all-gather of the parameters). 0 or 1.
    public var zeroStage: Int

    enum CodingKeys: String, CodingKey {
        case bucketMegabytes = "bucket_mb"
        case overlap
        case zeroStage = "zero_stage"
    }

    public init(bucketMegabytes: Double = 25, overlap: Bool = true, zeroStage: Int = 0) {
        self.bucketMegabytes = bucketMegabytes
        self.overlap = overlap
        self.zeroStage = zeroStage
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DataParallelConfig()
        bucketMegabytes = try field(c, .bucketMegabytes, d.bucketMegabytes)
        overlap = try field(c, .overlap, d.overlap)
        zeroStage = try field(c, .zeroStage, d.zeroStage)
    }

    /// - Throws: `TrainingError` naming the key.
    public func validate() throws {
        guard bucketMegabytes > 0 else {
            throw TrainingError("data_parallel.bucket_mb: must be positive, got \(bucketMegabytes)")
        }
        guard zeroStage == 0 || zeroStage == 1 else {
            throw TrainingError("data_parallel.zero_stage: 0 or 1, got \(zeroStage)")
        }
    }
}

/// How the training loop combines the work of data-parallel processes. With no communicator (a
/// process not started by `mpirun`/`srun`) every method is a no-op and the loop is the single-process
/// loop.
///
/// The loop calls it at a few points of a step:
/// 1. `start` once, after any resume: rank 0's parameters are broadcast to every rank;
/// 2. `gradientHook` for the last micro-batch of a step: each finished gradient (plus the sum of the
///    earlier micro-batches) is copied into its bucket, and a bucket whose gradients are all final is
///    all-reduced on the communication thread while backward continues (`overlap`);
/// 3. `combine` inside Optim's `GradientAccumulator.finalize`: the remaining buckets are all-reduced, the
///    loss sums and token counts are summed over ranks, so the one division is by the supervised
///    tokens of the global batch;
/// 4. `update`: the optimizer step (ZeRO-1: this rank's share, then an all-gather of the parameters);
/// 5. `gatherCursors` / `optimizerState` when a checkpoint is made: collectives every rank calls;
///    only rank 0 (`isWriter`) writes the file, the metrics and the plots.
///
/// Buckets are launched in a fixed order on every rank (bucket k only after buckets 0..<k), so the
/// collectives match even when ranks finish their gradients in different orders; a parameter that got
/// no gradient on this rank contributes zeros, and one that got none on any rank stays without
/// gradient, as in a single process.
public final class DataParallel {
    /// The job, or nil for a single process.
    public let communicator: Communicator?
    public let config: DataParallelConfig

    /// This process's rank (0 without MPI).
    public var rank: Int { communicator?.rank ?? 0 }
    /// Processes in the job (1 without MPI).
    public var worldSize: Int { communicator?.size ?? 1 }
    /// Whether this process writes checkpoints, metrics and plots (rank 0).
    public var isWriter: Bool { rank == 0 }
    /// Whether gradients are combined across processes at all.
    public var isDistributed: Bool { worldSize > 1 }

    /// One process, no MPI.
    public static let single = DataParallel(communicator: nil, config: DataParallelConfig())

    /// The job this process was launched in (`Communicator.world()`), or `single`.
    /// - Throws: `CollectiveError` when launched but Open MPI cannot be loaded; `TrainingError` for a bad config.
    public static func automatic(_ config: DataParallelConfig = DataParallelConfig()) throws -> DataParallel {
        try config.validate()
        guard let world = try Communicator.world(), world.size > 1 else { return .single }
        return DataParallel(communicator: world, config: config)
    }

    public init(communicator: Communicator?, config: DataParallelConfig) {
        self.communicator = communicator
        self.config = config
    }

    // MARK: Layout

    /// A contiguous float32 buffer holding several parameters' gradients.
    final class Bucket {
        var names: [String] = []
        var offsets: [Int] = []
        var counts: [Int] = []
        var buffer: [Float] = []
        var ready = 0
    }

    struct Layout {
        /// Trainable parameter names in registration order, with their element counts.
        var names: [String]
        var counts: [String: Int]
        var buckets: [Bucket]
        /// name -> (bucket, slot)
        var place: [String: (Int, Int)]
        /// ZeRO-1: the owner rank of each parameter, and each rank's parameters in order.
        var owner: [String: Int]
        var owned: [[String]]
        var block: Int
    }

    private var layout: Layout?
    private var received: Set<String> = []
    private var launched = 0
    private let queue = DispatchQueue(label: "sightline.data-parallel")
    private var failure: Error?
    private let failureLock = NSLock()

    func prepare(_ parameters: [(String, Parameter)]) -> Layout {
        if let l = layout, l.names == parameters.map(\.0) { return l }
        for (n, p) in parameters { shapes[n] = p.shape }
        let names = parameters.map(\.0)
        let counts = Dictionary(uniqueKeysWithValues: parameters.map { ($0.0, $0.1.shape.reduce(1, *)) })
        let cap = max(1, Int(config.bucketMegabytes * 1_048_576 / 4))
        var buckets: [Bucket] = []
        var place: [String: (Int, Int)] = [:]
        var current = Bucket()
        var filled = 0
        for name in names.reversed() {
            let n = counts[name]!
            if filled > 0 && filled + n > cap {
                current.buffer = [Float](repeating: 0, count: filled)
                buckets.append(current)
                current = Bucket()
                filled = 0
            }
            place[name] = (buckets.count, current.names.count)
            current.names.append(name)
            current.offsets.append(filled)
            current.counts.append(n)
            filled += n
        }
        if !current.names.isEmpty {
            current.buffer = [Float](repeating: 0, count: filled)
            buckets.append(current)
        }
        // ZeRO-1 ownership: whole parameters, greedily to the rank with the fewest elements so far
        // (largest first), so each rank holds about 1/N of the optimizer state.
        var owner: [String: Int] = [:]
        var owned = [[String]](repeating: [], count: worldSize)
        var load = [Int](repeating: 0, count: worldSize)
        for name in names.sorted(by: { (counts[$0]!, $1) > (counts[$1]!, $0) }) {
            let r = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
            owner[name] = r
            load[r] += counts[name]!
        }
        for name in names { owned[owner[name]!].append(name) }
        let l = Layout(
            names: names, counts: counts, buckets: buckets, place: place, owner: owner, owned: owned,
            block: max(1, load.max() ?? 1))
        layout = l
        return l
    }

    // MARK: 1. Start

    /// Copies rank 0's parameters (trainable and frozen) to every rank.
    public func start(model: Module) throws {
        guard let comm = communicator, isDistributed else { return }
        for (_, p) in model.namedParameters() {
            var data = p.data
            try data.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
            p.data = data
        }
    }

    // MARK: 2. Gradient-ready hook

    /// The hook for the last micro-batch's backward: nil when not distributed, with overlap off, or
    /// with ZeRO-1 (whose reduce-scatter runs after backward).
    /// - Parameter accumulated: the summed gradients of the step's earlier micro-batches.
    public func gradientHook(parameters: [(String, Parameter)], accumulated: Gradients)
        -> ((String, Tensor) throws -> Void)?
    {
        guard isDistributed, config.overlap, config.zeroStage == 0 else { return nil }
        let l = prepare(parameters)
        return { [self] name, g in
            guard let (b, slot) = l.place[name], !received.contains(name) else { return }
            let total = try accumulated[name].map { a in try noGrad { try a + g } } ?? g
            copy(total, into: l.buckets[b], slot: slot)
            received.insert(name)
            l.buckets[b].ready += 1
            try launchReady(l)
        }
    }

    private func copy(_ t: Tensor?, into bucket: Bucket, slot: Int) {
        let off = bucket.offsets[slot], n = bucket.counts[slot]
        bucket.buffer.withUnsafeMutableBufferPointer { dst in
            if let t {
                t.withUnsafeBufferPointer { src in
                    dst.baseAddress!.advanced(by: off).update(from: src.baseAddress!, count: n)
                }
            } else {
                dst.baseAddress!.advanced(by: off).update(repeating: 0, count: n)
            }
        }
    }

    /// Launches, in order, every bucket whose gradients are all in.
    private func launchReady(_ l: Layout) throws {
        try checkFailure()
        while launched < l.buckets.count, l.buckets[launched].ready == l.buckets[launched].names.count {
            let bucket = l.buckets[launched]
            launched += 1
            guard let comm = communicator else { continue }
            queue.async { [self] in
                do {
                    try bucket.buffer.withUnsafeMutableBufferPointer { try comm.allReduce($0, .sum) }
                } catch {
                    failureLock.withLock { if failure == nil { failure = error } }
                }
            }
        }
    }

    private func checkFailure() throws {
        if let e = failureLock.withLock({ failure }) { throw e }
    }

    // MARK: 3. Combine

    /// Sums `gradients` (this rank's summed micro-batch gradients; ZeRO-1: then only this rank's
    /// share is kept) and `scalars` (loss sums and counts) over all ranks.
    /// - Parameter flags: per trainable parameter whether it has a gradient here (summed over ranks
    ///   to tell which parameters got a gradient anywhere).
    public func combine(
        _ gradients: inout Gradients, scalars: inout [Double], parameters: [(String, Parameter)]
    ) throws {
        defer {
            received = []
            launched = 0
        }
        guard let comm = communicator, isDistributed else { return }
        let l = prepare(parameters)
        // Which parameters have a gradient anywhere, and the scalars, in one small all-reduce.
        var small = scalars + l.names.map { gradients[$0] != nil || received.contains($0) ? 1 : 0 }
        if config.zeroStage == 0 {
            // Buckets the hook has not filled (overlap off, or parameters without a gradient here).
            for (bi, bucket) in l.buckets.enumerated() where bi >= launched {
                for (slot, name) in bucket.names.enumerated() where !received.contains(name) {
                    copy(gradients[name], into: bucket, slot: slot)
                    received.insert(name)
                    bucket.ready += 1
                }
            }
            try launchReady(l)
        }
        // After the buckets, on the same thread: every rank issues the collectives in the same order.
        try queue.sync { try comm.allReduce(&small, .sum) }
        try checkFailure()
        scalars = Array(small[0..<scalars.count])
        let present = Dictionary(uniqueKeysWithValues: zip(l.names, small[scalars.count...].map { $0 > 0 }))
        if config.zeroStage == 1 {
            try reduceScatter(&gradients, present: present, layout: l, comm: comm)
            return
        }
        var out = Gradients()
        for name in l.names where present[name]! {
            let (b, slot) = l.place[name]!
            let bucket = l.buckets[b]
            let off = bucket.offsets[slot], n = bucket.counts[slot]
            out.set(name, try Tensor(shape: shapeOf(name), scalars: Array(bucket.buffer[off..<(off + n)])))
        }
        for bucket in l.buckets { bucket.ready = 0 }
        gradients = out
    }

    /// ZeRO-1: a reduce-scatter leaves each rank the summed gradients of the parameters it owns.
    private func reduceScatter(
        _ gradients: inout Gradients, present: [String: Bool], layout l: Layout, comm: Communicator
    ) throws {
        var send = [Float](repeating: 0, count: l.block * worldSize)
        send.withUnsafeMutableBufferPointer { dst in
            for r in 0..<worldSize {
                var off = r * l.block
                for name in l.owned[r] {
                    if let g = gradients[name] {
                        g.withUnsafeBufferPointer { dst.baseAddress!.advanced(by: off).update(from: $0.baseAddress!, count: g.count) }
                    }
                    off += l.counts[name]!
                }
            }
        }
        var mine = [Float](repeating: 0, count: l.block)
        try send.withUnsafeBufferPointer { s in
            try mine.withUnsafeMutableBufferPointer { try comm.reduceScatter(s, into: $0) }
        }
        var out = Gradients()
        var off = 0
        for name in l.owned[rank] {
            let n = l.counts[name]!
            if present[name]! {
                out.set(name, try Tensor(shape: shapeOf(name), scalars: Array(mine[off..<(off + n)])))
            }
            off += n
        }
        gradients = out
    }

    private var shapes: [String: [Int]] = [:]
    private func shapeOf(_ name: String) -> [Int] { shapes[name]! }

    // MARK: 4. Update

    /// The optimizer step. Without ZeRO: `optimizer.update` on the (identical) all-reduced gradients.
    /// ZeRO-1: the global norm from every rank's share, the update of this rank's parameters, then an
    /// all-gather of the parameters.
    /// - Parameter lossFinite: false makes the step skip (the loss is already summed over ranks, so
    ///   every rank decides the same).
    public func update(
        _ optimizer: any Optimizer, parameters: [(String, Parameter)], gradients: Gradients, lossFinite: Bool,
        maxGradientNorm: Float
    ) throws -> StepOutcome {
        guard let comm = communicator, isDistributed, config.zeroStage == 1 else {
            return try optimizer.update(
                parameters, gradients: gradients, gradientNorm: lossFinite ? nil : .nan,
                maxGradientNorm: maxGradientNorm)
        }
        let l = prepare(parameters)
        var squares = [gradients.reduce(0.0) { $0 + $1.gradient.sumOfSquares() }]
        try comm.allReduce(&squares, .sum)
        let norm = lossFinite ? Float(squares[0].squareRoot()) : .nan
        let mine = Set(l.owned[rank])
        let outcome = try optimizer.update(
            parameters.filter { mine.contains($0.0) }, gradients: gradients, gradientNorm: norm,
            maxGradientNorm: maxGradientNorm)
        if !outcome.isSkipped { try gatherParameters(parameters, layout: l, comm: comm) }
        return outcome
    }

    /// ZeRO-1: every rank's updated share to every rank.
    private func gatherParameters(_ parameters: [(String, Parameter)], layout l: Layout, comm: Communicator) throws {
        let byName = Dictionary(uniqueKeysWithValues: parameters.map { ($0.0, $0.1) })
        var all = [Float](repeating: 0, count: l.block * worldSize)
        all.withUnsafeMutableBufferPointer { dst in
            var off = rank * l.block
            for name in l.owned[rank] {
                byName[name]!.data.withUnsafeBufferPointer {
                    dst.baseAddress!.advanced(by: off).update(from: $0.baseAddress!, count: $0.count)
                }
                off += l.counts[name]!
            }
        }
        try all.withUnsafeMutableBufferPointer { try comm.allGather(inPlace: $0) }
        for r in 0..<worldSize where r != rank {
            var off = r * l.block
            for name in l.owned[r] {
                let p = byName[name]!
                let n = l.counts[name]!
                p.update { data in
                    data.withUnsafeMutableBufferPointer { b in
                        all.withUnsafeBufferPointer { b.baseAddress!.update(from: $0.baseAddress! + off, count: n) }
                    }
                }
                off += n
            }
        }
    }

    // MARK: 5. Checkpoints

    /// Every rank's data cursor, in rank order (a single process: its own).
    public func gatherCursors(_ json: String) throws -> [String] {
        guard let comm = communicator, isDistributed else { return [json] }
        return try comm.allGather(bytes: Array(json.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The optimizer's full state. ZeRO-1: the moments of every rank's share, gathered, so the
    /// checkpoint is one file that loads at any rank count.
    public func optimizerState(_ optimizer: any Optimizer, parameters: [(String, Parameter)]) throws -> OptimizerState {
        guard let comm = communicator, isDistributed, config.zeroStage == 1 else { return try OptimizerState(optimizer) }
        let l = prepare(parameters)
        let local = Dictionary(optimizer.stateTensors(), uniquingKeysWith: { a, _ in a })
        var slots: [String] = []
        for (key, _) in local.sorted(by: { $0.key < $1.key }) {
            let slot = String(key[key.index(after: key.lastIndex(of: ".")!)...])
            if !slots.contains(slot) { slots.append(slot) }
        }
        // Every rank must gather the same slots: agree on them (AdamW: exp_avg, exp_avg_sq).
        let allSlots = try comm.allGather(bytes: Array(slots.joined(separator: ",").utf8))
            .map { String(decoding: $0, as: UTF8.self) }.flatMap { $0.split(separator: ",").map(String.init) }
        let slotNames = Array(Set(allSlots)).sorted()
        var gathered: [(String, Tensor)] = []
        // Which parameters have state (moments are made at a parameter's first update).
        var has = l.names.map { name in local["\(name).\(slotNames.first ?? "")"] != nil ? 1.0 : 0.0 }
        try comm.allReduce(&has, .sum)
        let withState = Set(zip(l.names, has).filter { $0.1 > 0 }.map(\.0))
        for slot in slotNames {
            var all = [Float](repeating: 0, count: l.block * worldSize)
            all.withUnsafeMutableBufferPointer { dst in
                var off = rank * l.block
                for name in l.owned[rank] {
                    if let t = local["\(name).\(slot)"] {
                        t.withUnsafeBufferPointer { dst.baseAddress!.advanced(by: off).update(from: $0.baseAddress!, count: $0.count) }
                    }
                    off += l.counts[name]!
                }
            }
            try all.withUnsafeMutableBufferPointer { try comm.allGather(inPlace: $0) }
            for r in 0..<worldSize {
                var off = r * l.block
                for name in l.owned[r] {
                    let n = l.counts[name]!
                    if withState.contains(name) {
                        gathered.append(("\(name).\(slot)", try Tensor(shape: shapeOf(name), scalars: Array(all[off..<(off + n)]))))
                    }
                    off += n
                }
            }
        }
        return try OptimizerState(
            step: optimizer.step, skippedSteps: optimizer.skippedSteps, stateTensors: gathered)
    }

    /// Restores optimizer state from a checkpoint. ZeRO-1: only this rank's share of the moments is kept.
    public func restoreOptimizer(_ state: OptimizerState, into optimizer: any Optimizer, parameters: [(String, Parameter)])
        throws
    {
        guard isDistributed, config.zeroStage == 1 else { return try state.restore(into: optimizer) }
        let l = prepare(parameters)
        let mine = Set(l.owned[rank])
        try state.restore(into: optimizer) { mine.contains($0) }
    }

    // MARK: Agreement and failure

    /// Whether any rank says yes (a stop request seen by one rank stops all at the same step).
    public func any(_ flag: Bool) throws -> Bool {
        guard let comm = communicator, isDistributed else { return flag }
        var v = [flag ? 1.0 : 0.0]
        try comm.allReduce(&v, .max)
        return v[0] > 0
    }

    /// Ends every rank of the job with this rank's error (never returns when distributed).
    public func fail(_ error: Error) {
        guard let comm = communicator, isDistributed else { return }
        comm.abort("\(error)")
    }

    /// Ends every rank of the MPI job this process runs in, if any, with `error` (apps call it on an
    /// error outside the training loop, so that no rank waits forever in a collective). Returns in a
    /// single process.
    public static func failJob(_ error: Error) {
        guard Communicator.isLaunched, let world = try? Communicator.world(), world.size > 1 else { return }
        world.abort("\(error)")
    }

    /// Runs `body` on rank 0 first and on the other ranks after it finished (a barrier between), e.g.
    /// writing shared files that the others then read. A failure on any rank ends the job.
    public static func rankZeroFirst<T>(_ body: () throws -> T) throws -> T {
        guard let world = try Communicator.world(), world.size > 1 else { return try body() }
        do {
            if world.rank != 0 { try world.barrier() }
            let value = try body()
            if world.rank == 0 { try world.barrier() }
            return value
        } catch {
            world.abort("\(error)")
        }
    }

    /// Whether this process is rank 0 of its job (true in a single process).
    public static var isRankZero: Bool { ((try? Communicator.world())??.rank ?? 0) == 0 }
}
