import Foundation
import Yams

extension TrainingConfig {
    /// The configuration a stage command runs with: the YAML `file` (or every default), then the
    /// `key.path=value` overrides in order, then `--resume` and `--output` when given.
    /// - Throws: `ConfigError` naming the file, line or override and the key path.
    public static func resolve(file: String?, overrides: [String], resume: String? = nil, output: String? = nil)
        throws -> TrainingConfig
    {
        var all = overrides
        if let resume { all.append("run.resume=\(resume)") }
        if let output { all.append("run.output=\(output)") }
        if let file { return try load(path: file, overrides: all) }
        return try TrainingConfig.defaults.applying(overrides: all)
    }

    /// Every default as YAML: the whole configuration, or one stage's section (under its key).
    public static func defaultsYAML(stage: Stage? = nil) throws -> String {
        let d = TrainingConfig.defaults
        guard let stage else { return try d.yaml(comments: true) }
        let encoder = YAMLEncoder()
        switch stage {
        case .clip: return try encoder.encode(["clip": d.clip])
        case .pretrain: return try encoder.encode(["pretrain": d.pretrain])
        case .scaleTokens: return try encoder.encode(["scale-tokens": d.scaleTokens])
        case .finetune: return try encoder.encode(["finetune": d.finetune])
        }
    }
}
