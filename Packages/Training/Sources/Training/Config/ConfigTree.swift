import Foundation
import Yams

/// An error in a configuration file or override: names the key path, the file (or the override) and,
/// when known, the line.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// Dotted key path (`pretrain.optimizer.lr`), or "" for the document itself.
    public var keyPath: String
    /// The file, or `override 'key=value'`.
    public var source: String
    /// 1-based line in `source`, when the YAML parser reported one.
    public var line: Int?
    public var message: String

    public init(keyPath: String, source: String, line: Int? = nil, _ message: String) {
        self.keyPath = keyPath
        self.source = source
        self.line = line
        self.message = message
    }

    public var description: String {
        let place = line.map { "\(source):\($0)" } ?? source
        return keyPath.isEmpty ? "\(place): \(message)" : "\(place): \(keyPath): \(message)"
    }
}

/// A configuration document as a tree: maps keep their key order (the order `TrainingConfig` declares
/// its fields), scalars keep their type, and every node may remember the line it came from.
public indirect enum ConfigValue: Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([ConfigValue])
    case map([ConfigEntry])

    public var description: String { scalarText }

    /// The type name used in error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }

    /// The entry named `key` of a map.
    public subscript(key: String) -> ConfigValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The value at a dotted path (`["pretrain", "optimizer", "lr"]`).
    public func value(at path: [String]) -> ConfigValue? {
        var v: ConfigValue? = self
        for k in path { v = v?[k] }
        return v
    }

    /// Replaces the value at `path` (which must exist).
    mutating func set(_ new: ConfigValue, at path: ArraySlice<String>) {
        guard let k = path.first else {
            self = new
            return
        }
        guard case .map(var entries) = self, let i = entries.firstIndex(where: { $0.key == k }) else { return }
        entries[i].value.set(new, at: path.dropFirst())
        self = .map(entries)
    }

    /// Plain Foundation objects (for `JSONSerialization`).
    var foundation: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .int(let i): return i
        case .double(let d): return d
        case .string(let s): return s
        case .list(let l): return l.map(\.foundation)
        case .map(let m): return Dictionary(m.map { ($0.key, $0.value.foundation) }, uniquingKeysWith: { a, _ in a })
        }
    }

    // MARK: YAML text

    /// The value as YAML (block style, two-space indentation; lists of scalars in flow style).
    public var yaml: String {
        var out = ""
        emit(into: &out, indent: 0, comments: [:], path: [])
        return out
    }

    /// YAML with a `# comment` line before each key that `comments` (keyed by dotted path) describes.
    public func yaml(comments: [String: String]) -> String {
        var out = ""
        emit(into: &out, indent: 0, comments: comments, path: [])
        return out
    }

    var scalarText: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return ".nan" }
            if d.isInfinite { return d > 0 ? ".inf" : "-.inf" }
            if d == d.rounded(), abs(d) < 1e15 { return String(format: "%.1f", d) }
            return "\(d)"
        case .string(let s): return ConfigValue.quoteIfNeeded(s)
        case .list(let l): return "[" + l.map(\.scalarText).joined(separator: ", ") + "]"
        case .map(let m):
            return "{" + m.map { "\($0.key): \($0.value.scalarText)" }.joined(separator: ", ") + "}"
        }
    }

    static func quoteIfNeeded(_ s: String) -> String {
        let plainSafe = s.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "_-./+".unicodeScalars.contains($0)
        }
        // A plain scalar must not read back as another type (true, 1e5, null, ...).
        if plainSafe, !s.isEmpty, let node = try? Yams.compose(yaml: s), case .string = ConfigValue.scalar(node) {
            return s
        }
        let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }

    private func emit(into out: inout String, indent: Int, comments: [String: String], path: [String]) {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let entries):
            for e in entries {
                let p = path + [e.key]
                if let c = comments[p.joined(separator: ".")] {
                    for line in c.split(separator: "\n") { out += "\(pad)# \(line)\n" }
                }
                switch e.value {
                case .map(let sub) where !sub.isEmpty:
                    out += "\(pad)\(e.key):\n"
                    e.value.emit(into: &out, indent: indent + 2, comments: comments, path: p)
                case .list(let items) where items.contains(where: { if case .map = $0 { return true } else { return false } }):
                    out += "\(pad)\(e.key):\n"
                    for item in items { out += "\(pad)  - \(item.scalarText)\n" }
                default:
                    out += "\(pad)\(e.key): \(e.value.scalarText)\n"
                }
            }
        default:
            out += pad + scalarText + "\n"
        }
    }

    /// The typed value of a YAML scalar node (YAML 1.1 core resolution as Yams applies it; a quoted
    /// scalar is always a string).
    static func scalar(_ node: Node) -> ConfigValue {
        if let s = node.scalar, s.style == .singleQuoted || s.style == .doubleQuoted { return .string(s.string) }
        if node.null != nil { return .null }
        // Only true/false are booleans (YAML 1.2): `off`, `yes`, `no` stay strings.
        if let text = node.scalar?.string, ["true", "false"].contains(text.lowercased()) {
            return .bool(text.lowercased() == "true")
        }
        if let i = node.int { return .int(i) }
        if let d = node.float { return .double(d) }
        return .string(node.string ?? "")
    }
}

/// One key of a map.
public struct ConfigEntry: Equatable {
    public var key: String
    public var value: ConfigValue
    public init(key: String, value: ConfigValue) {
        self.key = key
        self.value = value
    }
}

/// Where each key path of a parsed document was written (1-based lines).
public typealias ConfigLines = [String: Int]

enum ConfigTree {
    /// Parses YAML text into a tree, recording each key path's line.
    /// - Throws: `ConfigError` naming `source` and the parser's line for invalid YAML, or a
    ///   non-string key.
    static func parse(_ text: String, source: String) throws -> (ConfigValue, ConfigLines) {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw ConfigError(keyPath: "", source: source, line: yamlLine(e), "invalid YAML: \(e)")
        }
        var lines: ConfigLines = [:]
        guard let node else { return (.map([]), lines) }
        let value = try convert(node, path: [], source: source, lines: &lines)
        return (value, lines)
    }

    static func yamlLine(_ e: YamlError) -> Int? {
        switch e {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default: return nil
        }
    }

    private static func convert(_ node: Node, path: [String], source: String, lines: inout ConfigLines) throws
        -> ConfigValue
    {
        switch node {
        case .scalar: return ConfigValue.scalar(node)
        case .sequence(let seq):
            return .list(
                try seq.enumerated().map { i, n in
                    try convert(n, path: path + [String(i)], source: source, lines: &lines)
                })
        case .mapping(let mapping):
            var entries: [ConfigEntry] = []
            for (k, v) in mapping {
                guard let key = k.scalar?.string else {
                    throw ConfigError(
                        keyPath: path.joined(separator: "."), source: source, line: k.mark?.line,
                        "keys must be plain strings")
                }
                let p = path + [key]
                let dotted = p.joined(separator: ".")
                if entries.contains(where: { $0.key == key }) {
                    throw ConfigError(keyPath: dotted, source: source, line: k.mark?.line, "key given twice")
                }
                lines[dotted] = k.mark?.line
                entries.append(ConfigEntry(key: key, value: try convert(v, path: p, source: source, lines: &lines)))
            }
            return .map(entries)
        default:
            throw ConfigError(
                keyPath: path.joined(separator: "."), source: source, line: node.mark?.line,
                "unsupported YAML node (aliases are not allowed)")
        }
    }

    /// `tree` with every `.double` replaced by the number at the same path of a JSON object.
    static func exactNumbers(_ tree: ConfigValue, from json: Any) -> ConfigValue {
        switch tree {
        case .double:
            if let n = json as? NSNumber { return .double(n.doubleValue) }
            return tree
        case .map(let entries):
            guard let o = json as? [String: Any] else { return tree }
            return .map(entries.map { e in ConfigEntry(key: e.key, value: o[e.key].map { exactNumbers(e.value, from: $0) } ?? e.value) })
        case .list(let items):
            guard let a = json as? [Any], a.count == items.count else { return tree }
            return .list(zip(items, a).map { exactNumbers($0, from: $1) })
        default: return tree
        }
    }

    /// Overlays `given` on `defaults`: every key of `given` must exist in `defaults` and every value
    /// must have the default's type (an integer is accepted where a number is expected; any scalar
    /// where a string is expected, kept as written; a list's items are checked against the default
    /// list's first item).
    /// - Throws: `ConfigError` naming the key path, `source` and the line.
    static func overlay(
        _ given: ConfigValue, on defaults: ConfigValue, path: [String], source: String, lines: ConfigLines
    ) throws -> ConfigValue {
        let dotted = path.joined(separator: ".")
        func fail(_ m: String) -> ConfigError {
            ConfigError(keyPath: dotted, source: source, line: lines[dotted], m)
        }
        switch (defaults, given) {
        case (.map(let d), .map(let g)):
            var out = d
            for e in g {
                guard let i = out.firstIndex(where: { $0.key == e.key }) else {
                    let p = (path + [e.key]).joined(separator: ".")
                    throw ConfigError(
                        keyPath: p, source: source, line: lines[p],
                        "unknown key (valid here: \(d.map(\.key).joined(separator: ", ")))")
                }
                out[i].value = try overlay(
                    e.value, on: out[i].value, path: path + [e.key], source: source, lines: lines)
            }
            return .map(out)
        case (.map, _):
            throw fail("expected a mapping of \(defaults.mapKeys.joined(separator: ", ")), got \(given.typeName) \(given.scalarText)")
        case (.list(let d), .list(let g)):
            guard let template = d.first else { return given }
            return .list(
                try g.enumerated().map { i, item in
                    try overlay(item, on: template, path: path + [String(i)], source: source, lines: lines)
                })
        case (.list, _):
            throw fail("expected a list, got \(given.typeName) \(given.scalarText)")
        case (.int, .int), (.bool, .bool), (.double, .double), (.string, .string), (.null, _):
            return given
        case (.double, .int(let i)):
            return .double(Double(i))
        case (.double, .string("auto")) where path.last == "lr":
            return given
        case (.string, .int), (.string, .double), (.string, .bool):
            return .string(given.scalarText)
        default:
            throw fail("expected \(defaults.typeName) (default \(defaults.scalarText)), got \(given.typeName) \(given.scalarText)")
        }
    }
}

extension ConfigValue {
    var mapKeys: [String] {
        if case .map(let m) = self { return m.map(\.key) }
        return []
    }
}
