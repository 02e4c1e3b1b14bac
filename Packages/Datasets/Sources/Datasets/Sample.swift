import Foundation

/// Where an image's bytes are: a file, or bytes already read (a tar member).
public enum ImageReference: @unchecked Sendable, Equatable {
    case file(URL)
    case bytes(Data, name: String)

    /// The file path or member name, for reports.
    public var name: String {
        switch self {
        case .file(let u): return u.path
        case .bytes(_, let n): return n
        }
    }
}

/// One raw document read from a source, before decoding and tokenization.
public struct Sample: @unchecked Sendable, Equatable {
    public enum Part: Equatable, @unchecked Sendable {
        /// Text and whether it is supervised (assistant turns and captions: yes; prompts: no).
        case text(String, supervised: Bool)
        case image(ImageReference)
    }
    /// "file:line" or "shard.tar:key", used in every report about this sample.
    public var name: String
    public var parts: [Part]
    public init(name: String, parts: [Part]) {
        self.name = name
        self.parts = parts
    }
    public var imageCount: Int {
        parts.reduce(0) { if case .image = $1 { return $0 + 1 } else { return $0 } }
    }

    /// Splits a text at `placeholder` (LLaVA's `<image>`) and puts the images there, in order.
    /// - Throws: `DatasetError` naming the sample when the placeholders and images disagree in number.
    public static func interleaving(
        _ text: String, supervised: Bool, images: inout ArraySlice<ImageReference>, placeholder: String,
        sample: String
    ) throws -> [Part] {
        let pieces = text.components(separatedBy: placeholder)
        guard pieces.count - 1 <= images.count else {
            throw DatasetError(
                "sample",
                "\(sample): \(pieces.count - 1) \(placeholder) placeholders but only \(images.count) images left"
            )
        }
        var parts: [Part] = []
        for (i, p) in pieces.enumerated() {
            if i > 0 { parts.append(.image(images.removeFirst())) }
            if !p.isEmpty { parts.append(.text(p, supervised: supervised)) }
        }
        return parts
    }
}

/// A bad record: where it is and what is wrong with it.
public struct Problem: Equatable, Sendable, CustomStringConvertible {
    /// "file:line", "shard.tar:member" or "shard.tar@offset".
    public var location: String
    public var message: String
    public var description: String { "\(location): \(message)" }
}

/// Collects bad records: each reported once, counted, and checked against a skip budget.
///
/// The budget aborts when more than `maximumFraction` of the records seen so far were skipped, once at
/// least `minimumRecords` were seen (so one bad line among the first three does not abort), or at once
/// when `maximumFraction` is 0.
public final class ProblemLog: @unchecked Sendable {
    public var maximumFraction: Double
    public var minimumRecords: Int
    /// Called once per new problem (default: print to standard error).
    public var sink: (Problem) -> Void
    let lock = NSLock()
    var seenLocations = Set<String>()
    public private(set) var problems: [Problem] = []
    public private(set) var records = 0
    public private(set) var skipped = 0

    public init(
        maximumFraction: Double = 0.01, minimumRecords: Int = 100,
        sink: @escaping (Problem) -> Void = { p in
            FileHandle.standardError.write(Data("data: skipped \(p)\n".utf8))
        }
    ) {
        self.maximumFraction = maximumFraction
        self.minimumRecords = minimumRecords
        self.sink = sink
    }

    /// Counts one record read (good or bad).
    public func countRecord() { lock.lock(); records += 1; lock.unlock() }

    /// Records a skipped record; reports it the first time its location is seen.
    /// - Throws: `DatasetError` when the skip budget is exceeded.
    public func skip(_ location: String, _ message: String) throws {
        lock.lock()
        skipped += 1
        let isNew = seenLocations.insert(location).inserted
        let p = Problem(location: location, message: message)
        if isNew { problems.append(p) }
        let (s, r) = (skipped, max(records, skipped))
        lock.unlock()
        if isNew { sink(p) }
        let over =
            maximumFraction <= 0 ? s > 0 : (r >= minimumRecords && Double(s) > maximumFraction * Double(r))
        if over {
            throw DatasetError(
                "data",
                "skipped \(s) of \(r) records, over the budget of \(maximumFraction * 100)%; last: \(p)")
        }
    }
}
