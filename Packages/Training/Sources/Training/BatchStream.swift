import Datasets
import Foundation

/// A stream of micro-batches whose position can be saved and restored exactly.
public protocol BatchStream: AnyObject {
    /// The next micro-batch.
    func next() throws -> PackedBatch
    /// The position after the last batch returned, as JSON text (stored in the training checkpoint
    /// and handed back to `DataFeed.open` on resume).
    func cursorJSON() throws -> String
}

/// Opens a `BatchStream` at the start (`nil`) or at a saved cursor.
public struct DataFeed {
    public var open: (_ cursorJSON: String?) throws -> any BatchStream
    /// The cursor rank `rank` of `worldSize` data-parallel ranks continues from, given the cursors a
    /// checkpoint saved for a different number of ranks (one per saved rank, in rank order).
    public var reshard: (_ cursors: [String], _ rank: Int, _ worldSize: Int) throws -> String?

    /// - Parameter reshard: default: an error (the feed cannot change its rank count).
    public init(
        open: @escaping (_ cursorJSON: String?) throws -> any BatchStream,
        reshard: ((_ cursors: [String], _ rank: Int, _ worldSize: Int) throws -> String?)? = nil
    ) {
        self.open = open
        self.reshard =
            reshard ?? { cursors, _, worldSize in
                throw TrainingError(
                    "this data feed cannot continue a checkpoint of \(cursors.count) data-parallel rank(s) on \(worldSize)")
            }
    }

    /// A feed over a Datasets `Loader`: `make` builds the loader from a saved `LoaderCursor` (source
    /// positions, mixture generator, packer carry-over), or from the start for nil. The loader's
    /// sources shard by record (`DataSource(rank:worldSize:)`); on a change of rank count the feed
    /// continues every source after the furthest record any saved rank had read (records between
    /// the ranks' positions are skipped and documents the packers had part-packed are dropped: an
    /// approximation, logged by the trainer).
    public static func loader(_ make: @escaping (LoaderCursor?) throws -> Loader) -> DataFeed {
        DataFeed(
            open: { json in
                let cursor = try json.map { try JSONDecoder().decode(LoaderCursor.self, from: Data($0.utf8)) }
                return LoaderStream(try make(cursor))
            },
            reshard: { cursors, _, _ in
                let saved = try cursors.map { try JSONDecoder().decode(LoaderCursor.self, from: Data($0.utf8)) }
                guard var merged = saved.first else { return nil }
                for c in saved.dropFirst() {
                    guard c.sources.count == merged.sources.count else {
                        throw TrainingError(
                            "data cursors of the checkpoint have \(merged.sources.count) and \(c.sources.count) sources")
                    }
                    for i in merged.sources.indices {
                        let (a, b) = (merged.sources[i], c.sources[i])
                        if (b.epoch, b.record) > (a.epoch, a.record) { merged.sources[i] = b }
                    }
                    merged.batches = max(merged.batches, c.batches)
                }
                merged.carry = nil
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys]
                return String(decoding: try e.encode(merged), as: UTF8.self)
            })
    }
}

/// A `BatchStream` over a Datasets `Loader` (its cursor is the stream position).
public final class LoaderStream: BatchStream {
    public let loader: Loader

    public init(_ loader: Loader) { self.loader = loader }

    deinit { loader.stop() }

    public func next() throws -> PackedBatch { try loader.next() }

    public func cursorJSON() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(loader.cursor), as: UTF8.self)
    }
}
