/// How one parameter is optimised: its group, weight decay and learning-rate multiplier.
public struct GroupSettings: Codable, Equatable, Sendable {
    /// The group's name (`ParameterGroups.defaultGroupName` for parameters no group claims).
    public var group: String
    public var weightDecay: Double
    public var learningRateMultiplier: Double

    public init(group: String = ParameterGroups.defaultGroupName, weightDecay: Double, learningRateMultiplier: Double = 1) {
        self.group = group
        self.weightDecay = weightDecay
        self.learningRateMultiplier = learningRateMultiplier
    }
}

/// A named set of parameters (by name prefix) with its own learning-rate multiplier and, optionally,
/// its own weight decay and rule for vectors and norms.
public struct ParameterGroup: Codable, Equatable, Sendable {
    /// Reported with the learning rate the group used (`StepReport.learningRates`).
    public var name: String
    /// Parameters whose names start with one of these belong to the group (the longest matching
    /// prefix over all groups wins).
    public var prefixes: [String]
    public var learningRateMultiplier: Double
    /// Weight decay of the group's ordinary weights; nil: `ParameterGroups.weightDecay`.
    public var weightDecay: Double?
    /// Whether the group's 1-D tensors and norm-like names decay too; nil:
    /// `ParameterGroups.decayVectorsAndNorms`.
    public var decayVectorsAndNorms: Bool?

    public init(
        name: String, prefixes: [String], learningRateMultiplier: Double = 1, weightDecay: Double? = nil,
        decayVectorsAndNorms: Bool? = nil
    ) {
        self.name = name
        self.prefixes = prefixes
        self.learningRateMultiplier = learningRateMultiplier
        self.weightDecay = weightDecay
        self.decayVectorsAndNorms = decayVectorsAndNorms
    }
}

/// Assigns parameters to groups by name.
///
/// Two weight-decay conventions, chosen for all parameters or per group:
/// - `decayVectorsAndNorms == false` (the default; LLaVA's and MM1's recipes): no decay on what is
///   not a weight matrix: 1-D tensors (biases, norm weights) and names containing one of
///   `noDecayPatterns` (norms, class and position embeddings, learned queries).
/// - `decayVectorsAndNorms == true` (`torch.optim.AdamW(model.parameters())`): every parameter decays
///   (`ParameterGroups.decayEverything(weightDecay:)`).
///
/// Groups by prefix give, e.g., an unfrozen vision tower a smaller rate and the connector a larger one;
/// parameters no group claims are in the group named `default`.
public struct ParameterGroups: Codable, Equatable, Sendable {
    /// The name of the group of parameters that no `ParameterGroup` claims.
    public static let defaultGroupName = "default"

    /// Weight decay of ordinary weights.
    public var weightDecay: Double
    /// Whether 1-D tensors and names matching `noDecayPatterns` decay too (PyTorch's default: yes;
    /// LLaVA/MM1: no).
    public var decayVectorsAndNorms: Bool
    /// Substrings of names that are not decayed when `decayVectorsAndNorms` is false (in addition to
    /// 1-D tensors).
    public var noDecayPatterns: [String]
    /// Groups by name prefix.
    public var groups: [ParameterGroup]

    /// - Parameters:
    ///   - learningRateMultipliers: shorthand for groups of one prefix each, named by the prefix.
    public init(
        weightDecay: Double, decayVectorsAndNorms: Bool = false,
        noDecayPatterns: [String] = ParameterGroups.defaultNoDecayPatterns,
        learningRateMultipliers: [String: Double] = [:], groups: [ParameterGroup] = []
    ) {
        self.weightDecay = weightDecay
        self.decayVectorsAndNorms = decayVectorsAndNorms
        self.noDecayPatterns = noDecayPatterns
        self.groups =
            groups
            + learningRateMultipliers.keys.sorted().map {
                ParameterGroup(name: $0, prefixes: [$0], learningRateMultiplier: learningRateMultipliers[$0]!)
            }
    }

    /// PyTorch's default: one rate of decay for every parameter, vectors and norms included.
    public static func decayEverything(weightDecay: Double) -> ParameterGroups {
        ParameterGroups(weightDecay: weightDecay, decayVectorsAndNorms: true)
    }

    /// Biases, norms, embeddings of positions and classes, and learned queries.
    public static let defaultNoDecayPatterns = [
        ".bias", "norm", "class_embedding", "position_embedding", "pos_emb", "cls_token", "query", "queries",
        "ln_",
    ]

    /// The group claiming `name` (longest matching prefix), or nil for the default group.
    public func group(of name: String) -> ParameterGroup? {
        var best: (ParameterGroup, Int)?
        for g in groups {
            for p in g.prefixes where name.hasPrefix(p) && p.count > (best?.1 ?? -1) { best = (g, p.count) }
        }
        return best?.0
    }

    /// The settings for parameter `name` of `shape`.
    public func settings(for name: String, shape: [Int]) -> GroupSettings {
        let g = group(of: name)
        let decayAll = g?.decayVectorsAndNorms ?? decayVectorsAndNorms
        let exempt = !decayAll && (shape.count < 2 || noDecayPatterns.contains { containsLiteral(name, $0) })
        return GroupSettings(
            group: g?.name ?? Self.defaultGroupName,
            weightDecay: exempt ? 0 : (g?.weightDecay ?? weightDecay),
            learningRateMultiplier: g?.learningRateMultiplier ?? 1)
    }

    enum CodingKeys: String, CodingKey { case weightDecay, decayVectorsAndNorms, noDecayPatterns, groups }

    /// Decodes a config; absent `decayVectorsAndNorms`, `noDecayPatterns` and `groups` take the defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            weightDecay: try c.decode(Double.self, forKey: .weightDecay),
            decayVectorsAndNorms: try c.decodeIfPresent(Bool.self, forKey: .decayVectorsAndNorms) ?? false,
            noDecayPatterns: try c.decodeIfPresent([String].self, forKey: .noDecayPatterns)
                ?? Self.defaultNoDecayPatterns,
            groups: try c.decodeIfPresent([ParameterGroup].self, forKey: .groups) ?? [])
    }
}

/// Whether `pattern`'s UTF-8 bytes occur in `name`'s: a literal substring test (parameter names are
/// ASCII), without the locale-aware comparison and bridging of Foundation's `contains`, which ran for
/// every parameter at every optimizer step.
func containsLiteral(_ name: String, _ pattern: String) -> Bool {
    let n = name.utf8, p = pattern.utf8
    guard p.count <= n.count else { return false }
    guard let first = p.first else { return true }
    var start = n.startIndex
    let last = n.index(n.endIndex, offsetBy: -p.count)
    while start <= last {
        if n[start] == first && n[start...].starts(with: p) { return true }
        start = n.index(after: start)
    }
    return false
}
