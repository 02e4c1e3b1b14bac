import Foundation

/// A path relative to `dir`, or absolute.
func resolve(_ path: String, _ dir: URL) -> URL {
    path.hasPrefix("/") ? URL(fileURLWithPath: path) : dir.appendingPathComponent(path)
}

/// The on-disk formats a source reads.
public enum SourceFormat: String, Codable, Sendable, CaseIterable {
    /// JSONL, one `{"image": path, "caption": text}` per line, paths relative to the manifest.
    case imageCaptionJSONL
    /// OBELICS-style JSONL: `{"texts": [...], "images": [...]}`, parallel lists with null where the other kind stands.
    case interleavedJSONL
    /// JSONL, one `{"text": ...}` per line.
    case textJSONL
    /// Plain text: documents separated by blank lines.
    case plainText
    /// LLaVA conversation JSON (an array; or JSONL with the same objects): `image` (a path or a list),
    /// `conversations` of `{"from": "human"|"gpt", "value": ...}` with `<image>` placeholders. Loss only on
    /// the assistant's turns.
    case llava
    /// WebDataset-style tar shards: members `key.ext` grouped by key; `key.jpg|jpeg|png` with `key.txt`
    /// (or `key.json` with `caption`/`text`) is an image-caption pair; `key.json` with `texts`/`images`
    /// (image entries naming members `key.<entry>`) is an interleaved document.
    case webDataset
}

/// Where a source stands: enough to continue reading with O(1) work.
public struct SourcePosition: Codable, Equatable, Sendable {
    /// Index into the source's files.
    public var file = 0
    /// Byte offset of the next record in that file (element index for a LLaVA JSON array).
    public var offset: UInt64 = 0
    /// 1-based line (or member/element index) of the next record in that file.
    public var line = 1
    /// Records read so far in this epoch, over all files (record `r` belongs to rank `r % worldSize`).
    public var record = 0
    /// Completed passes over the data.
    public var epoch = 0
    public init() {}
}

/// A streaming reader of one kind of data from a list of files, sharded by (rank, worldSize): record
/// `r` (counted over all files, in order) belongs to rank `r % worldSize`. Bad records are reported to
/// the `ProblemLog` with file and line or member and skipped. At the end of the files `next()` returns nil
/// once; a following call starts the next epoch.
public final class DataSource: @unchecked Sendable {
    public let name: String
    public let format: SourceFormat
    public let files: [URL]
    public let rank: Int
    public let worldSize: Int
    /// Directory LLaVA image paths are relative to (default: the JSON file's directory).
    public var imageRoot: URL?
    public let problems: ProblemLog
    public private(set) var position = SourcePosition()
    /// Default of `maxRecordBytes`: 16 MiB.
    public static let defaultMaxRecordBytes = 16 << 20
    /// Longest JSONL line (record) read, in bytes; a longer one is skipped as a bad record naming the
    /// file and line. Raise it for corpora with larger records.
    public var maxRecordBytes = DataSource.defaultMaxRecordBytes

    var lines: LineReader?
    var tar: TarReader?
    var llavaItems: [Any]?
    var pendingTarMember: TarMember?

    public init(
        name: String, format: SourceFormat, files: [URL], rank: Int = 0, worldSize: Int = 1,
        problems: ProblemLog = ProblemLog()
    ) throws {
        guard worldSize > 0, (0..<worldSize).contains(rank) else {
            throw DatasetError("source", "\(name): rank \(rank) outside world size \(worldSize)")
        }
        guard !files.isEmpty else { throw DatasetError("source", "\(name): no files") }
        self.name = name
        self.format = format
        self.files = files
        self.rank = rank
        self.worldSize = worldSize
        self.problems = problems
    }

    /// Continues from a saved position (opens one file and seeks: O(1) records read, except that a
    /// LLaVA JSON array file is parsed whole).
    public func seek(to p: SourcePosition) throws {
        guard p.file >= 0, p.file <= files.count else {
            throw DatasetError("source", "\(name): file \(p.file) of \(files.count)")
        }
        position = p
        closeFile()
    }

    func closeFile() {
        lines = nil
        tar = nil
        llavaItems = nil
        pendingTarMember = nil
    }

    var fileName: String { files[position.file].lastPathComponent }

    /// The next sample of this rank; nil at the end of an epoch (the next call begins the next epoch).
    /// - Throws: `DatasetError` when the skip budget is exceeded or a file cannot be opened.
    public func next() throws -> Sample? {
        while true {
            if position.file >= files.count {
                position = {
                    var q = SourcePosition(); q.epoch = position.epoch + 1; return q
                }()
                closeFile()
                return nil
            }
            guard let raw = try readRaw() else {
                closeFile()
                position.file += 1
                position.offset = 0
                position.line = 1
                continue
            }
            let mine = position.record % worldSize == rank
            position.record += 1
            guard mine else { continue }
            problems.countRecord()
            do {
                if let s = try raw() { return s }
            } catch let e as DatasetError {
                try problems.skip(e.message.components(separatedBy: ": ").first ?? name, e.message)
            } catch {
                try problems.skip(name, "\(error)")
            }
        }
    }

    /// Reads the next record's bytes and advances the position; the returned closure parses it
    /// (only called for this rank's records).
    func readRaw() throws -> (() throws -> Sample?)? {
        let url = files[position.file]
        let dir = url.deletingLastPathComponent()
        if position.offset == UInt64.max { return nil }  // a file found corrupt as a whole
        switch format {
        case .llava where url.pathExtension.lowercased() == "json":
            if llavaItems == nil {
                try requireRegularFile(url, step: "llava")
                let data = try Data(contentsOf: url)
                guard let arr = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
                    let loc = "\(url.lastPathComponent):1"
                    // The whole file is one bad record.
                    position.offset = UInt64.max
                    return { throw DatasetError("llava", "\(loc): not a JSON array of conversations") }
                }
                llavaItems = arr
            }
            guard let items = llavaItems, position.offset < UInt64(items.count) else { return nil }
            let i = Int(position.offset)
            position.offset += 1
            position.line = i + 2
            let loc = "\(url.lastPathComponent)[\(i)]"
            let root = imageRoot ?? dir
            return { try Self.llava(items[i], loc: loc, root: root) }
        case .webDataset:
            return try readTarSample(url)
        case .plainText:
            if lines == nil {
                lines = try LineReader(url: url, offset: position.offset, maxRecordBytes: maxRecordBytes)
            }
            var text: [String] = []
            var firstLine = position.line
            var tooLong: Int?
            while let (l, _) = try lines!.next() {
                position.line += 1
                if let n = lines!.lastLineTooLong {
                    tooLong = n
                    text.append("")
                    continue
                }
                let s = String(decoding: l, as: UTF8.self)
                if s.trimmingCharacters(in: .whitespaces).isEmpty {
                    if text.isEmpty { firstLine = position.line; continue }
                    break
                }
                text.append(s)
            }
            position.offset = lines!.offset
            guard !text.isEmpty else { return nil }
            let loc = "\(url.lastPathComponent):\(firstLine)"
            if let n = tooLong {
                let limit = maxRecordBytes
                return {
                    throw DatasetError(
                        "text", "\(loc): a line of \(n) bytes is over the limit of \(limit) (maxRecordBytes)")
                }
            }
            let doc = text.joined(separator: "\n")
            return { Sample(name: loc, parts: [.text(doc, supervised: true)]) }
        default:
            if lines == nil {
                lines = try LineReader(url: url, offset: position.offset, maxRecordBytes: maxRecordBytes)
            }
            while let (l, _) = try lines!.next() {
                let lineNo = position.line
                position.line += 1
                position.offset = lines!.offset
                if let n = lines!.lastLineTooLong {
                    let loc = "\(url.lastPathComponent):\(lineNo)"
                    let limit = maxRecordBytes
                    return {
                        throw DatasetError(
                            "json", "\(loc): record of \(n) bytes is over the limit of \(limit) (maxRecordBytes)")
                    }
                }
                if l.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let loc = "\(url.lastPathComponent):\(lineNo)"
                let format = self.format
                let root = imageRoot ?? dir
                return {
                    guard let obj = try? JSONSerialization.jsonObject(with: l) else {
                        throw DatasetError("json", "\(loc): malformed JSON")
                    }
                    return try Self.parse(obj, format: format, loc: loc, dir: format == .llava ? root : dir)
                }
            }
            return nil
        }
    }

    static func parse(_ obj: Any, format: SourceFormat, loc: String, dir: URL) throws -> Sample {
        guard let o = obj as? [String: Any] else { throw DatasetError("json", "\(loc): not a JSON object") }
        switch format {
        case .imageCaptionJSONL:
            guard let img = o["image"] as? String, let cap = o["caption"] as? String else {
                throw DatasetError("json", "\(loc): needs string fields \"image\" and \"caption\"")
            }
            return Sample(name: loc, parts: [.image(.file(resolve(img, dir))), .text(cap, supervised: true)])
        case .interleavedJSONL:
            return try interleaved(o, loc: loc) { .file(resolve($0, dir)) }
        case .textJSONL:
            guard let t = o["text"] as? String else {
                throw DatasetError("json", "\(loc): needs a string field \"text\"")
            }
            return Sample(name: loc, parts: [.text(t, supervised: true)])
        case .llava:
            return try llava(o, loc: loc, root: dir)
        default:
            throw DatasetError("json", "\(loc): \(format) is not a JSON format")
        }
    }

    static func interleaved(_ o: [String: Any], loc: String, image: (String) throws -> ImageReference) throws
        -> Sample
    {
        guard let texts = o["texts"] as? [Any], let images = o["images"] as? [Any] else {
            throw DatasetError("json", "\(loc): needs lists \"texts\" and \"images\"")
        }
        guard texts.count == images.count else {
            throw DatasetError(
                "json", "\(loc): \"texts\" has \(texts.count) entries, \"images\" \(images.count)")
        }
        var parts: [Sample.Part] = []
        for (t, i) in zip(texts, images) {
            switch (t as? String, i as? String) {
            case (let s?, nil): parts.append(.text(s, supervised: true))
            case (nil, let p?): parts.append(.image(try image(p)))
            default:
                throw DatasetError("json", "\(loc): each position needs exactly one of a text and an image")
            }
        }
        return Sample(name: loc, parts: parts)
    }

    static func llava(_ obj: Any, loc: String, root: URL) throws -> Sample {
        guard let o = obj as? [String: Any], let turns = o["conversations"] as? [[String: Any]] else {
            throw DatasetError("llava", "\(loc): needs a \"conversations\" list")
        }
        var refs: [ImageReference] = []
        if let s = o["image"] as? String { refs = [.file(resolve(s, root))] }
        if let l = o["image"] as? [String] { refs = l.map { .file(resolve($0, root)) } }
        var left = refs[...]
        var parts: [Sample.Part] = []
        for t in turns {
            guard let from = t["from"] as? String, let value = t["value"] as? String else {
                throw DatasetError("llava", "\(loc): a turn needs \"from\" and \"value\"")
            }
            let assistant = from == "gpt" || from == "assistant"
            guard assistant || from == "human" || from == "user" else {
                throw DatasetError("llava", "\(loc): unknown speaker \"\(from)\"")
            }
            parts.append(.text(assistant ? "ASSISTANT: " : "USER: ", supervised: false))
            parts += try Sample.interleaving(
                value, supervised: assistant, images: &left, placeholder: "<image>", sample: loc)
            parts.append(.text("\n", supervised: assistant))
        }
        guard left.isEmpty else {
            throw DatasetError(
                "llava", "\(loc): \(refs.count) images but \(refs.count - left.count) <image> placeholders")
        }
        return Sample(name: loc, parts: parts)
    }

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    func readTarSample(_ url: URL) throws -> (() throws -> Sample?)? {
        if tar == nil { tar = try TarReader(url: url, offset: position.offset) }
        let t = tar!
        let file = url.lastPathComponent
        var members: [TarMember] = []
        var key: String?
        do {
            while let m = try pendingTarMember.map({ x in
                pendingTarMember = nil; return x
            }) ?? t.next() {
                let base = (m.name as NSString).lastPathComponent
                let dirPart = (m.name as NSString).deletingLastPathComponent
                let k =
                    (dirPart.isEmpty ? "" : dirPart + "/")
                    + (base.split(separator: ".", maxSplits: 1).first.map(String.init) ?? base)
                if key == nil { key = k; position.offset = m.offset }
                if k != key { pendingTarMember = m; break }
                members.append(m)
            }
        } catch let e as DatasetError {
            // A corrupt archive cannot be resynchronised: report it as one bad record and end the shard.
            position.offset = UInt64.max
            let loc = members.first.map { "\(file):\($0.name)" } ?? "\(file)@\(t.offset)"
            tar = nil
            return { throw DatasetError("tar", "\(loc): \(e.message)") }
        }
        guard let k = key else { return nil }
        position.line += 1
        let next = pendingTarMember?.offset ?? t.offset
        let loc = "\(file):\(k)"
        defer { position.offset = next }
        return {
            var byExt: [String: Data] = [:]
            for m in members {
                let base = (m.name as NSString).lastPathComponent
                let ext = base.split(separator: ".", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
                byExt[ext.lowercased()] = m.data
            }
            if let j = byExt["json"] {
                guard let o = try? JSONSerialization.jsonObject(with: j) as? [String: Any] else {
                    throw DatasetError("tar", "\(loc).json: malformed JSON")
                }
                if o["texts"] != nil {
                    return try Self.interleaved(o, loc: loc) { entry in
                        guard let d = byExt[entry.lowercased()] else {
                            throw DatasetError("tar", "\(loc): no member \(k).\(entry)")
                        }
                        return .bytes(d, name: "\(file):\(k).\(entry)")
                    }
                }
            }
            guard let (ext, img) = byExt.first(where: { Self.imageExtensions.contains($0.key) }) else {
                throw DatasetError("tar", "\(loc): no image member (jpg, jpeg, png)")
            }
            var caption: String?
            if let t = byExt["txt"] { caption = String(decoding: t, as: UTF8.self) }
            if caption == nil, let j = byExt["json"],
                let o = try? JSONSerialization.jsonObject(with: j) as? [String: Any]
            {
                caption = (o["caption"] as? String) ?? (o["text"] as? String)
            }
            guard let c = caption else {
                throw DatasetError("tar", "\(loc): no caption (txt, or json with caption/text)")
            }
            return Sample(
                name: loc,
                parts: [.image(.bytes(img, name: "\(file):\(k).\(ext)")), .text(c, supervised: true)])
        }
    }
}
