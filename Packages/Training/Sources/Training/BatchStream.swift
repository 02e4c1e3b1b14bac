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

    public init(open: @escaping (_ cursorJSON: String?) throws -> any BatchStream) { self.open = open }

    /// A feed over a Datasets `Loader`: `make` builds the loader from a saved `LoaderCursor` (source
    /// positions, mixture generator, packer carry-over), or from the start for nil.
    public static func loader(_ make: @escaping (LoaderCursor?) throws -> Loader) -> DataFeed {
        DataFeed { json in
            let cursor = try json.map { try JSONDecoder().decode(LoaderCursor.self, from: Data($0.utf8)) }
            return LoaderStream(try make(cursor))
        }
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
