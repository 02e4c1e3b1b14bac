import Foundation

/// Where a loader stands between batches: part of the training checkpoint. Restoring it reads one
/// record at most (the carried-over document), whatever the number of batches already produced.
public struct LoaderCursor: Codable, Equatable, Sendable {
    /// Per source: file, byte offset, line, record, epoch.
    public var sources: [SourcePosition]
    /// The mixture's generator and counts.
    public var mixture: Mixture
    /// The document the packer was part way through, if any.
    public var carry: Carry?
    /// Batches produced so far.
    public var batches: Int

    public struct Carry: Codable, Equatable, Sendable {
        /// Which source it came from and that source's position just before it.
        public var source: Int
        public var before: SourcePosition
        /// Its tokens (after widening image markers) already packed.
        public var offset: Int

        public init(source: Int, before: SourcePosition, offset: Int) {
            self.source = source
            self.before = before
            self.offset = offset
        }
    }

    /// Checks a cursor (usually decoded from a checkpoint) against a loader of `sourceCount` sources
    /// before anything indexes with it.
    /// - Throws: `DatasetError` naming the value when the source count, the mixture's weights or counts,
    ///   the carried document's source, a file index, the carry offset or the batch count is out of range.
    public func validate(sourceCount: Int) throws {
        let op = "loader cursor"
        guard sources.count == sourceCount else {
            throw DatasetError(op, "has \(sources.count) source positions, the loader \(sourceCount) sources")
        }
        guard mixture.weights.count == sourceCount, mixture.counts.count == sourceCount else {
            throw DatasetError(
                op,
                "mixture has \(mixture.weights.count) weights and \(mixture.counts.count) counts for \(sourceCount) sources"
            )
        }
        if let bad = mixture.counts.firstIndex(where: { $0 < 0 }) {
            throw DatasetError(op, "mixture count \(bad) is negative (\(mixture.counts[bad]))")
        }
        guard batches >= 0 else { throw DatasetError(op, "batches \(batches) is negative") }
        for (i, p) in sources.enumerated() {
            guard p.file >= 0, p.line >= 0, p.record >= 0, p.epoch >= 0 else {
                throw DatasetError(
                    op, "source \(i) position has a negative index (file \(p.file), line \(p.line), "
                        + "record \(p.record), epoch \(p.epoch))")
            }
        }
        if let carry {
            guard (0..<sourceCount).contains(carry.source) else {
                throw DatasetError(op, "carry source \(carry.source) is outside 0..<\(sourceCount)")
            }
            guard carry.offset >= 0 else { throw DatasetError(op, "carry offset \(carry.offset) is negative") }
            guard carry.before.file >= 0 else {
                throw DatasetError(op, "carry file \(carry.before.file) is negative")
            }
        }
    }
}

/// Reads a weighted mixture of sources, builds documents on background workers, and packs them into
/// batches, in the same order whatever the worker count.
///
/// One producer thread draws the next source from the mixture and reads the next raw sample (cheap);
/// `workers` threads decode images and tokenize (the expensive part); the consumer (`next()`) takes the
/// results in reading order from a bounded queue (`prefetch` samples) and packs them.
public final class Loader: @unchecked Sendable {
    public let sources: [DataSource]
    public let builder: DocumentBuilder
    public let batchSize: Int
    public let workers: Int
    public let prefetch: Int
    public private(set) var packer: SequencePacker
    /// Records read while restoring the cursor (0 or 1).
    public private(set) var restoreReads = 0

    struct Meta {
        var source: Int
        var before: SourcePosition
        var after: [SourcePosition]
        var mixture: Mixture
    }
    struct Job {
        var seq: Int
        var sample: Sample
        var meta: Meta
    }

    var mixture: Mixture
    var cursorState: LoaderCursor
    var pendingMeta: Meta?
    // threading
    let cond = NSCondition()
    var jobs: [Job] = []
    var results: [Int: (Result<TokenizedDocument, Error>, Meta)] = [:]
    var producedSeq = 0
    var consumedSeq = 0
    var producerError: Error?
    var stopping = false
    var threads: [Thread] = []

    /// - Parameters:
    ///   - sources: one per mixture weight.
    ///   - cursor: a saved cursor to continue from (nil: the start).
    public init(
        sources: [DataSource], mixture: Mixture, builder: DocumentBuilder, packing: PackingConfig,
        batchSize: Int, workers: Int = 1, prefetch: Int = 64, cursor: LoaderCursor? = nil
    ) throws {
        guard sources.count == mixture.weights.count, batchSize > 0, workers >= 0, prefetch > 0 else {
            throw DatasetError(
                "loader",
                "\(sources.count) sources for \(mixture.weights.count) weights, batch \(batchSize), workers \(workers)"
            )
        }
        self.sources = sources
        self.builder = builder
        self.batchSize = batchSize
        self.workers = workers
        self.prefetch = prefetch
        packer = try SequencePacker(config: packing)
        self.mixture = mixture
        cursorState = LoaderCursor(sources: sources.map(\.position), mixture: mixture, carry: nil, batches: 0)
        if let c = cursor {
            try c.validate(sourceCount: sources.count)
            self.mixture = c.mixture
            cursorState = c
            if let carry = c.carry {
                let src = sources[carry.source]
                try src.seek(to: carry.before)
                guard let s = try src.next() else {
                    throw DatasetError("loader", "carried document of source \(carry.source) not found")
                }
                restoreReads = 1
                try packer.push(try builder.build(s), resumingAt: carry.offset)
                pendingMeta = Meta(
                    source: carry.source, before: carry.before, after: c.sources, mixture: c.mixture)
            }
            for (s, p) in zip(sources, c.sources) { try s.seek(to: p) }
        }
        if workers > 0 { start() }
    }

    deinit { stop() }

    /// Stops the background threads (they hold the loader until then: call it when done).
    public func stop() {
        cond.lock(); stopping = true; cond.broadcast(); cond.unlock()
    }

    /// The cursor after the last batch returned.
    public var cursor: LoaderCursor { cursorState }

    /// Realised mixture proportions of the documents read so far.
    public var realisedProportions: [Double] { cursorState.mixture.realised }

    func readNext() throws -> (Sample, Meta) {
        while true {
            let i = mixture.next()
            let src = sources[i]
            var before = src.position
            var s = try src.next()
            if s == nil { before = src.position; s = try src.next() }  // a new epoch
            guard let sample = s else {
                throw DatasetError("loader", "source \(src.name) has no records for this rank")
            }
            return (sample, Meta(source: i, before: before, after: sources.map(\.position), mixture: mixture))
        }
    }

    func start() {
        let producer = Thread { [self] in
            while true {
                self.cond.lock()
                while !self.stopping && self.producedSeq - self.consumedSeq >= self.prefetch {
                    self.cond.wait()
                }
                if self.stopping { self.cond.unlock(); return }
                self.cond.unlock()
                do {
                    let (s, m) = try self.readNext()
                    self.cond.lock()
                    self.jobs.append(Job(seq: self.producedSeq, sample: s, meta: m))
                    self.producedSeq += 1
                    self.cond.broadcast()
                    self.cond.unlock()
                } catch {
                    self.cond.lock(); self.producerError = error; self.cond.broadcast(); self.cond.unlock()
                    return
                }
            }
        }
        threads.append(producer)
        for _ in 0..<workers {
            threads.append(
                Thread { [self] in
                    while true {
                        self.cond.lock()
                        while !self.stopping && self.jobs.isEmpty { self.cond.wait() }
                        if self.stopping { self.cond.unlock(); return }
                        let job = self.jobs.removeFirst()
                        self.cond.unlock()
                        let r = Result { try self.builder.build(job.sample) }
                        self.cond.lock()
                        self.results[job.seq] = (r, job.meta)
                        self.cond.broadcast()
                        self.cond.unlock()
                    }
                })
        }
        for t in threads { t.start() }
    }

    func nextDocument() throws -> (Result<TokenizedDocument, Error>, Meta) {
        if workers == 0 {
            let (s, m) = try readNext()
            return (Result { try builder.build(s) }, m)
        }
        cond.lock()
        defer { cond.unlock() }
        while results[consumedSeq] == nil {
            if let e = producerError, producedSeq == consumedSeq { throw e }
            cond.wait()
        }
        let r = results.removeValue(forKey: consumedSeq)!
        consumedSeq += 1
        cond.broadcast()
        return r
    }

    /// The next batch of `batchSize` packed rows.
    /// - Throws: `DatasetError` when the skip budget is exceeded or a source has nothing for this rank.
    public func next() throws -> PackedBatch {
        var rows: [PackedSequence] = []
        var lastMeta = pendingMeta
        while rows.count < batchSize {
            if let r = packer.nextSequence() { rows.append(r); continue }
            let (result, meta) = try nextDocument()
            lastMeta = meta
            do {
                try packer.push(try result.get())
                pendingMeta = meta
            } catch let e as DatasetError {
                let p = sources[meta.source].problems
                try p.skip(e.message.components(separatedBy: ": ").first ?? "?", e.message)
            }
        }
        if let m = lastMeta {
            cursorState.sources = m.after
            cursorState.mixture = m.mixture
        }
        cursorState.carry =
            packer.needsDocument
            ? nil
            : pendingMeta.map {
                LoaderCursor.Carry(source: $0.source, before: $0.before, offset: packer.carryOffset)
            }
        if packer.needsDocument { pendingMeta = nil }
        cursorState.batches += 1
        return try PackedBatch(rows: rows)
    }
}
