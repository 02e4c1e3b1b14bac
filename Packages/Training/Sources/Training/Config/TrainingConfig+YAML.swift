import Foundation
import TensorFiles
import Yams

extension TrainingConfig {
    /// The configuration as a tree, keys in declaration order.
    /// - Throws: `ConfigError` when a field cannot be encoded.
    public func tree() throws -> ConfigValue {
        let text: String
        do {
            text = try YAMLEncoder().encode(self)
        } catch {
            throw ConfigError(keyPath: "", source: "TrainingConfig", "cannot encode: \(error)")
        }
        var tree = try ConfigTree.parse(text, source: "TrainingConfig").0
        // The YAML encoder rounds doubles to 15 digits; take every number from the JSON encoding,
        // which round-trips exactly.
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self))
        tree = ConfigTree.exactNumbers(tree, from: json)
        // A head width derived from hidden_size / num_attention_heads is written as 0 ("derive"), so
        // that overriding the width keeps heads consistent.
        if model.language.explicitHeadDim == nil {
            tree.set(.int(0), at: ["model", "language", "head_dim"])
        }
        return tree
    }

    /// The configuration as YAML, every field written out (the file `load` reads back to an equal
    /// value). With `comments`, each documented key is preceded by its description.
    public func yaml(comments: Bool = false) throws -> String {
        let t = try tree()
        return comments ? t.yaml(comments: TrainingConfig.keyDescriptions) : t.yaml
    }

    /// Reads a run's YAML file over the defaults, then applies `key.path=value` overrides in order.
    /// - Throws: `ConfigError` naming the file (or the override), the key path and the line for an
    ///   unreadable file, invalid YAML, an unknown key, a value of the wrong type or one the field
    ///   rejects.
    public static func load(path: String, overrides: [String] = []) throws -> TrainingConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(keyPath: "", source: path, "cannot read the file: \(error.localizedDescription)")
        }
        return try parse(text, source: path, overrides: overrides)
    }

    /// Parses YAML text (see `load(path:overrides:)`); `source` names it in errors.
    public static func parse(_ text: String, source: String = "<config>", overrides: [String] = []) throws
        -> TrainingConfig
    {
        let defaults = try TrainingConfig.defaults.tree()
        let (given, lines) = try ConfigTree.parse(text, source: source)
        if case .map = given {} else {
            throw ConfigError(keyPath: "", source: source, line: 1, "the file must be a mapping of sections")
        }
        var tree = try ConfigTree.overlay(given, on: defaults, path: [], source: source, lines: lines)
        var config = try decode(tree, source: source, lines: lines)
        for o in overrides {
            tree = try apply(override: o, to: tree, defaults: defaults)
            config = try decode(tree, source: "override '\(o)'", lines: [:])
        }
        try validate(config, overrides: overrides, source: source, lines: lines)
        return config
    }

    /// This configuration with `key.path=value` overrides applied in order.
    /// - Throws: `ConfigError` naming the override and the key path.
    public func applying(overrides: [String]) throws -> TrainingConfig {
        guard !overrides.isEmpty else { return self }
        let defaults = try TrainingConfig.defaults.tree()
        var tree = try self.tree()
        var config = self
        for o in overrides {
            tree = try Self.apply(override: o, to: tree, defaults: defaults)
            config = try Self.decode(tree, source: "override '\(o)'", lines: [:])
        }
        try Self.validate(config, overrides: overrides, source: "overrides", lines: [:])
        return config
    }

    /// Writes the resolved configuration (every field) to `path`, atomically.
    public func save(to path: String) throws {
        let header = "# The resolved configuration of this run: every field, defaults included.\n"
        try DurableFile.write(header + yaml(), to: path)
    }

    /// Validates after all overrides; an error on a key an override set names that override.
    static func validate(_ config: TrainingConfig, overrides: [String], source: String, lines: ConfigLines) throws {
        do {
            try config.validate(source: source, lines: lines)
        } catch var e as ConfigError {
            if let o = overrides.last(where: {
                $0.split(separator: "=", maxSplits: 1).first.map { String($0).trimmingCharacters(in: .whitespaces) }
                    == e.keyPath
            }) {
                e.source = "override '\(o)'"
                e.line = nil
            }
            throw e
        }
    }

    static func apply(override: String, to tree: ConfigValue, defaults: ConfigValue) throws -> ConfigValue {
        let source = "override '\(override)'"
        guard let eq = override.firstIndex(of: "=") else {
            throw ConfigError(keyPath: "", source: source, "expected key.path=value")
        }
        let key = String(override[..<eq]).trimmingCharacters(in: .whitespaces)
        let raw = String(override[override.index(after: eq)...])
        let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !key.isEmpty, !path.contains("") else {
            throw ConfigError(keyPath: key, source: source, "empty key path")
        }
        // Walk the defaults to name the first unknown component.
        var node = defaults
        for (i, k) in path.enumerated() {
            guard let next = node[k] else {
                let here = path[...i].joined(separator: ".")
                let valid = node.mapKeys
                throw ConfigError(
                    keyPath: here, source: source,
                    valid.isEmpty
                        ? "unknown key (\(path[..<i].joined(separator: ".")) is not a section)"
                        : "unknown key (valid here: \(valid.joined(separator: ", ")))")
            }
            node = next
        }
        let parsed = try ConfigTree.parse(raw.isEmpty ? "\"\"" : raw, source: source).0
        let typed = try ConfigTree.overlay(parsed, on: node, path: path, source: source, lines: [:])
        var out = tree
        out.set(typed, at: path[...])
        return out
    }

    static func decode(_ tree: ConfigValue, source: String, lines: ConfigLines) throws -> TrainingConfig {
        do {
            let data = try JSONSerialization.data(withJSONObject: tree.foundation)
            var config = try JSONDecoder().decode(TrainingConfig.self, from: data)
            if config.model.language.explicitHeadDim == 0 { config.model.language.explicitHeadDim = nil }
            return config
        } catch let e as DecodingError {
            let (path, message): ([CodingKey], String)
            switch e {
            case .dataCorrupted(let c): (path, message) = (c.codingPath, c.debugDescription)
            case .keyNotFound(let k, let c): (path, message) = (c.codingPath + [k], "missing")
            case .typeMismatch(_, let c): (path, message) = (c.codingPath, c.debugDescription)
            case .valueNotFound(_, let c): (path, message) = (c.codingPath, c.debugDescription)
            @unknown default: (path, message) = ([], "\(e)")
            }
            let dotted = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            throw ConfigError(keyPath: dotted, source: source, line: lines[dotted], message)
        }
    }
}
