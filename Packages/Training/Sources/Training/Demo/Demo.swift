import Bridges
import Datasets
import Evaluation
import Foundation
import Logging
import TensorFiles

/// `trainer demo`: the Chain-of-Sight recipe in miniature on the synthetic world, every stage through
/// the stage functions: `clip` (cached in the run folder) and the decoder's text-only warm-up (cached)
/// -> `pretrain` at 32 visual tokens -> `scale-tokens` (`demo32to336`, 10.5x) -> `finetune` with LoRA ->
/// held-out evaluation; beside it the same pre-trained model fine-tuned at 32 tokens; with `compare`,
/// Chain-of-Sight at 336 tokens throughout
/// and the LLaVA-style MLP projection of all patch tokens. Writes `summary.json` and SVG plots.
public enum Demo {
    /// One arm's measurements (`summary.json`'s `arms`).
    public struct Arm: Codable, Equatable, Sendable {
        public var name: String
        public var pretrainTokens: Int
        public var finetuneTokens: Int
        public var pretrainSteps: Int
        public var finetuneSteps: Int
        public var pretrainSeconds: Double
        public var finetuneSeconds: Double
        public var pretrainFinalLoss: Double
        public var finetuneFinalLoss: Double
        public var accuracy: Double
        public var accuracyPerType: [String: Double]
        public var smallObjectAccuracy: Double
        public var blindAccuracy: Double
        public var chance: Double
        public var chancePerType: [String: Double]
        /// (step, loss) of pre-training then fine-tuning (steps continued).
        public var losses: [[Double]]

        enum CodingKeys: String, CodingKey {
            case name, accuracy, chance, losses
            case pretrainTokens = "pretrain_tokens", finetuneTokens = "finetune_tokens"
            case pretrainSteps = "pretrain_steps", finetuneSteps = "finetune_steps"
            case pretrainSeconds = "pretrain_seconds", finetuneSeconds = "finetune_seconds"
            case pretrainFinalLoss = "pretrain_final_loss", finetuneFinalLoss = "finetune_final_loss"
            case accuracyPerType = "accuracy_per_type", smallObjectAccuracy = "small_object_accuracy"
            case blindAccuracy = "blind_accuracy", chancePerType = "chance_per_type"
        }
    }

    /// One pass criterion of the issue (`summary.json`'s `criteria`).
    public struct Criterion: Codable, Equatable, Sendable {
        public var name: String
        public var value: Double
        public var threshold: Double
        public var pass: Bool
    }

    /// `summary.json`.
    public struct Summary: Codable, Equatable, Sendable {
        public var quick: Bool
        public var compare: Bool
        public var clipSeconds: Double
        /// Seconds of the decoder's text-only warm-up (0 when it was reused from the folder).
        public var textSeconds: Double = 0
        public var totalSeconds: Double
        public var arms: [Arm]
        public var criteria: [Criterion]

        enum CodingKeys: String, CodingKey {
            case quick, compare, arms, criteria
            case clipSeconds = "clip_seconds", textSeconds = "text_seconds", totalSeconds = "total_seconds"
        }

        /// The printed table.
        public var table: String {
            func p(_ x: Double) -> String { String(format: "%5.1f", 100 * x) }
            var lines = [
                "arm                      tok pt/ft  steps pt/ft  time pt/ft (s)  loss pt/ft     acc  small  blind  chance"
            ]
            for a in arms {
                lines.append(
                    a.name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + String(format: " %4d/%-5d %5d/%-5d %7.1f/%-7.1f %6.3f/%-6.3f", a.pretrainTokens, a.finetuneTokens,
                            a.pretrainSteps, a.finetuneSteps, a.pretrainSeconds, a.finetuneSeconds, a.pretrainFinalLoss,
                            a.finetuneFinalLoss)
                        + "  \(p(a.accuracy))  \(p(a.smallObjectAccuracy))  \(p(a.blindAccuracy))  \(p(a.chance))")
                lines.append(
                    "    per type: " + a.accuracyPerType.keys.sorted().map {
                        "\($0) \(p(a.accuracyPerType[$0]!)) (chance \(p(a.chancePerType[$0] ?? 0)))"
                    }.joined(separator: ", "))
            }
            lines.append("criteria:")
            for c in criteria {
                lines.append(
                    "  [\(c.pass ? "PASS" : "FAIL")] \(c.name): \(String(format: "%.4f", c.value)) (threshold \(String(format: "%.4f", c.threshold)))")
            }
            return lines.joined(separator: "\n")
        }
    }

    /// The demo's configuration: a 16x16 patch grid (4x4 windows are the world's 4x4 cells).
    /// - Parameter quick: tiny sizes and a few steps (a pipeline check of seconds).
    public static func config(quick: Bool) -> TrainingConfig {
        var c = TrainingConfig()
        let image = 128, patch = 8
        c.data.synthetic.imageSize = image
        c.data.synthetic.patchSize = patch
        c.model.vision = .init(
            imageSize: image, patchSize: patch, hiddenSize: quick ? 16 : 64, numHiddenLayers: 2,
            numAttentionHeads: 2, intermediateSize: quick ? 32 : 128)
        c.model.language = .init(
            vocabSize: 0, hiddenSize: quick ? 32 : 128, intermediateSize: quick ? 64 : 256,
            numHiddenLayers: quick ? 2 : 3, numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 2048)
        c.model.connector.headDim = quick ? 8 : 32
        c.data.sequenceLength = quick ? 256 : 320
        c.data.maxImages = 16
        c.metrics.progress = "off"
        c.metrics.tensorboard = false
        c.clip.optimization.steps = quick ? 2 : 150
        c.clip.optimization.globalBatch = quick ? 4 : 32
        c.clip.optimization.microBatch = c.clip.optimization.globalBatch
        c.clip.optimization.warmupSteps = quick ? 0 : 10
        c.clip.text.hiddenSize = quick ? 16 : 64
        c.clip.text.intermediateSize = quick ? 32 : 128
        c.clip.text.numAttentionHeads = 2
        c.clip.projectionDim = quick ? 16 : 64
        c.clip.cadence.evalBatches = 1
        for stage in [Stage.pretrain, .finetune] {
            var o = OptimizationSection()
            o.steps = quick ? 2 : (stage == .pretrain ? 600 : 500)
            o.globalBatch = quick ? 2 : 4
            o.microBatch = o.globalBatch
            o.warmupSteps = quick ? 0 : 30
            o.lr = .fixed(stage == .pretrain ? 3e-3 : 2e-3)
            o.weightDecay = stage == .pretrain ? 0.1 : 0
            // The connector at a tenth of the rate: at the full rate its tokens lose what they carry of
            // the image before the decoder learns to read them (docs/demo.md, "Measured").
            o.learningRateMultipliers.connector = 0.1
            var cad = CadenceSection()
            cad.checkpointEvery = max(1, o.steps)
            cad.keepLast = 1
            cad.evalEvery = o.steps + 1
            if stage == .pretrain {
                c.pretrain.optimization = o
                c.pretrain.cadence = cad
            } else {
                c.finetune.optimization = o
                c.finetune.cadence = cad
            }
        }
        c.finetune.lora.dropout = 0
        c.scaleTokens.extension = ChainOfSightExtension.demo32to336.name
        c.scaleTokens.imageSize = image
        c.model.connector.preset = ChainOfSightPreset.pt32.rawValue
        return c
    }

    /// Optimizer steps of the demo's text-only warm-up of the decoder (0 skips it).
    public static func textSteps(quick: Bool) -> Int { quick ? 2 : 300 }

    /// The text warm-up's configuration: `pretrain` on the world's text-only documents alone (mixture
    /// 0/0/1), rows sized for them, `textSteps` steps, the pre-training learning rate (every part at
    /// multiplier 1).
    static func textConfig(_ config: TrainingConfig, quick: Bool) throws -> TrainingConfig {
        var c = config
        c.data.mixture.interleaved = 0
        c.data.mixture.imageCaption = 0
        c.data.mixture.textOnly = 1
        c.model.languageWeights = ""
        c.pretrain.optimization.steps = textSteps(quick: quick)
        c.pretrain.optimization.learningRateMultipliers = .init()  // the decoder trains here, whatever pretrain says
        c.pretrain.cadence.checkpointEvery = c.pretrain.optimization.steps
        c.pretrain.cadence.evalEvery = c.pretrain.optimization.steps + 1
        return try sized(c, stage: .pretrain, visualTokens: 0)
    }

    /// Documents per packed row the demo aims at in each stage (pre-training mixes long interleaved
    /// documents with short captions; a fine-tuning document is one question).
    static let documentsPerRow: [Stage: Double] = [.pretrain: 2.5, .finetune: 4]

    /// The row length that gives a stage about the same number of documents per step at `visualTokens`
    /// per image as at any other count: `documentsPerRow` times the mean document length (its text
    /// tokens plus `visualTokens` per image, measured on the world's first documents with the mixture's
    /// weights), rounded up to a multiple of 32. Every arm thus sees the same data per step, and an arm
    /// with fewer visual tokens per image spends fewer tokens on it (the paper's saving).
    public static func sequenceLength(stage: Stage, visualTokens: Int, config: TrainingConfig) throws -> Int {
        let s = config.data.synthetic
        let world = try SyntheticWorld(
            seed: UInt64(s.seed), imageSize: s.imageSize, patchSize: s.patchSize, heldOutEvery: s.heldOutEvery)
        let vocabulary = SyntheticVocabulary()
        func length(_ sample: Sample) -> Double {
            var n = 2  // <s> ... </s>
            for p in sample.parts {
                switch p {
                case .text(let t, _): n += vocabulary.encode(t).count
                case .image: n += visualTokens
                }
            }
            return Double(n)
        }
        func mean(_ samples: [Sample]) -> Double { samples.map(length).reduce(0, +) / Double(max(1, samples.count)) }
        let docs = 64
        let average: Double
        if stage == .finetune {
            average = mean((0..<docs / 4).flatMap { i in
                (0..<world.instruction(i).questions.count).map { world.singleQuestionSample(i, question: $0) }
            })
        } else {
            let m = config.data.mixture
            let total = m.interleaved + m.imageCaption + m.textOnly
            average = (m.interleaved * mean((0..<docs).map { world.interleavedSample($0) })
                + m.imageCaption * mean((0..<docs).map { world.captionSample($0) })
                + m.textOnly * mean((0..<docs).map { world.textSample($0) })) / total
        }
        let rows = (documentsPerRow[stage] ?? 1) * average
        return max(32, Int((rows / 32).rounded(.up)) * 32)
    }

    /// Visual tokens per image of the connector `config` names (before any scaling).
    static func visualTokens(_ config: TrainingConfig) throws -> Int {
        let c = config.model.connector
        if c.type == "projection" {
            let side = config.model.vision.imageSize / config.model.vision.patchSize
            return side * side
        }
        guard let preset = ChainOfSightPreset(rawValue: c.preset) else {
            throw ConfigError(keyPath: "model.connector.preset", source: "demo", "unknown preset \"\(c.preset)\"")
        }
        return preset.tokenCount
    }

    /// `config` with the row length of `stage` at `visualTokens` per image (see `sequenceLength`).
    static func sized(_ config: TrainingConfig, stage: Stage, visualTokens: Int) throws -> TrainingConfig {
        var c = config
        c.data.sequenceLength = try sequenceLength(stage: stage, visualTokens: visualTokens, config: config)
        return c
    }

    /// The report of a stage that already finished in `directory` with this very configuration (its
    /// `config.yaml` equal to `config`'s, its `stage.json` and model written), so that running the demo
    /// again into the same folder resumes after the last finished stage; nil otherwise.
    static func finished(_ directory: String, report: String, config: TrainingConfig) -> StageReport? {
        let fm = FileManager.default
        guard let saved = try? String(contentsOfFile: directory + "/config.yaml", encoding: .utf8),
            let current = try? config.yaml(), saved.hasSuffix(current),
            fm.fileExists(atPath: directory + "/language/config.json"),
            let data = fm.contents(atPath: report),
            var r = try? JSONDecoder().decode(StageReport.self, from: data)
        else { return nil }
        r.directory = directory
        return r
    }

    /// Held-out images evaluated.
    public static func evalImages(quick: Bool) -> Int { quick ? 4 : 200 }

    /// Runs the demo into `output`; prints the table through `print`.
    /// - Parameter overrides: `key.path=value` overrides of the demo's configuration (`config(quick:)`),
    ///   applied in order as `trainer --set` applies them.
    /// - Throws: `ConfigError` naming the override for an unknown key or a wrong value.
    public static func run(
        quick: Bool, compare: Bool, output: String, overrides: [String] = [],
        logger: Logger = Logger(label: "sightline.demo"), print: (String) -> Void = { Swift.print($0) }
    ) throws -> Summary {
        let start = Date()
        var base = config(quick: quick)
        if !overrides.isEmpty {
            base = try TrainingConfig.parse(try base.yaml(), source: "demo", overrides: overrides)
            try base.validate()
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        // 1. clip, cached.
        var clipSeconds = 0.0
        if !FileManager.default.fileExists(atPath: output + "/clip/vision/config.json") {
            print("clip: contrastive pre-training of the vision tower")
            let t = Date()
            try ClipStage.run(config: base, output: output)
            clipSeconds = Date().timeIntervalSince(t)
        }
        var withTower = base
        withTower.data.synthetic.directory = output + "/data"  // one copy of the world for every arm
        withTower.model.visionWeights = output + "/clip/vision"
        withTower.run.resume = "never"
        // 1b. The decoder learns the world's language first (MM1 starts from a pre-trained LLM):
        // `pretrain` on the text-only documents, cached in <output>/text and shared by every arm.
        var textSeconds = 0.0
        if textSteps(quick: quick) > 0 {
            let text = try textConfig(withTower, quick: quick)
            let dir = output + "/text"
            if finished(dir + "/pretrain", report: dir + "/pretrain/stage.json", config: text) == nil {
                print("text: the decoder learns the world's language (text-only documents)")
                let t = Date()
                try PretrainStage.run(config: text, output: dir, logger: logger)
                textSeconds = Date().timeIntervalSince(t)
            }
            withTower.model.languageWeights = dir + "/pretrain/language"
        }

        func pretrain(_ config: TrainingConfig, _ dir: String) throws -> StageReport {
            if let r = finished(dir + "/pretrain", report: dir + "/pretrain/stage.json", config: config) {
                print("  (reusing the finished pretrain stage in \(dir))")
                return r
            }
            return try PretrainStage.run(config: config, output: dir, logger: logger)
        }
        func finetune(_ config: TrainingConfig, _ dir: String, from input: String) throws -> StageReport {
            if let r = finished(dir + "/finetune", report: dir + "/finetune/adapter/stage.json", config: config) {
                print("  (reusing the finished finetune stage in \(dir))")
                return r
            }
            return try FinetuneStage.run(config: config, output: dir, input: input, logger: logger)
        }

        func finish(_ name: String, pre: StageReport, fine: StageReport, folder: String, config: TrainingConfig)
            throws -> Arm
        {
            print("\(name): evaluating on \(evalImages(quick: quick)) held-out images")
            let model = try StageModels.load(directory: fine.directory)
            let r = try AnswerEvaluation.run(
                model: model, config: config, images: evalImages(quick: quick), output: folder)
            let a = r.answers!
            return Arm(
                name: name, pretrainTokens: pre.visualTokens, finetuneTokens: fine.visualTokens, pretrainSteps: pre.steps,
                finetuneSteps: fine.steps, pretrainSeconds: pre.seconds, finetuneSeconds: fine.seconds,
                pretrainFinalLoss: pre.finalLoss, finetuneFinalLoss: fine.finalLoss, accuracy: a.overall.accuracy,
                accuracyPerType: a.perType.mapValues(\.accuracy),
                smallObjectAccuracy: a.perTag["small_object"]?.accuracy ?? 0,
                blindAccuracy: r.blind!.blind.overall.accuracy, chance: a.overall.chance,
                chancePerType: a.perType.mapValues(\.chance),
                losses: pre.losses + fine.losses.map { [$0[0] + Double(pre.steps), $0[1]] })
        }

        // 2. Chain-of-Sight: 32 tokens -> scale -> finetune; and the same pre-training finetuned at 32.
        let cos = output + "/chain_of_sight"
        print("chain_of_sight: pretrain at 32 tokens")
        let cosTokens = try visualTokens(withTower)
        let pre = try pretrain(sized(withTower, stage: .pretrain, visualTokens: cosTokens), cos)
        try ScaleTokensStage.run(config: withTower, output: cos)
        print("chain_of_sight: scale-tokens (\(withTower.scaleTokens.extension)), finetune with LoRA")
        let scaledTokens = try StageModels.visualTokens(StageModels.load(directory: cos + "/scale-tokens"))
        let fine = try finetune(
            sized(withTower, stage: .finetune, visualTokens: scaledTokens), cos, from: cos + "/scale-tokens")
        var arms = [try finish("chain_of_sight", pre: pre, fine: fine, folder: cos, config: withTower)]
        let at32 = output + "/chain_of_sight_32"
        print("chain_of_sight_32: the same pre-trained model finetuned at 32 tokens")
        let fine32 = try finetune(sized(withTower, stage: .finetune, visualTokens: cosTokens), at32, from: cos + "/pretrain")
        arms.append(try finish("chain_of_sight_32", pre: pre, fine: fine32, folder: at32, config: withTower))

        if compare {
            var many = withTower
            many.model.connector.preset = ChainOfSightPreset.demo_q16_64_256.rawValue
            let dir = output + "/baseline_many_tokens"
            print("baseline_many_tokens: Chain-of-Sight at \(try visualTokens(many)) tokens throughout")
            let manyTokens = try visualTokens(many)
            let p = try pretrain(sized(many, stage: .pretrain, visualTokens: manyTokens), dir)
            let f = try finetune(sized(many, stage: .finetune, visualTokens: manyTokens), dir, from: dir + "/pretrain")
            arms.append(try finish("baseline_many_tokens", pre: p, fine: f, folder: dir, config: many))
            var linear = withTower
            linear.model.connector.type = "projection"
            // The MLP projection keeps its full learning rate: at a tenth it no longer learns colour
            // (52.5% at x1, 15.5% at x0.1 as measured); each connector at its own best known rate.
            linear.pretrain.optimization.learningRateMultipliers.connector = 1
            linear.finetune.optimization.learningRateMultipliers.connector = 1
            let dirL = output + "/baseline_linear"
            print("baseline_linear: MLP projection of all patch tokens")
            let linearTokens = try visualTokens(linear)
            let pl = try pretrain(sized(linear, stage: .pretrain, visualTokens: linearTokens), dirL)
            let fl = try finetune(sized(linear, stage: .finetune, visualTokens: linearTokens), dirL, from: dirL + "/pretrain")
            arms.append(try finish("baseline_linear", pre: pl, fine: fl, folder: dirL, config: linear))
        }

        let summary = Summary(
            quick: quick, compare: compare, clipSeconds: clipSeconds, textSeconds: textSeconds, totalSeconds: Date().timeIntervalSince(start),
            arms: arms, criteria: criteria(arms: arms, compare: compare))
        try write(summary, to: output)
        print(summary.table)
        return summary
    }

    /// The issue's pass criteria over measured arms (thresholds as the issue states them).
    public static func criteria(arms: [Arm], compare: Bool) -> [Criterion] {
        var out: [Criterion] = []
        guard let cos = arms.first(where: { $0.name == "chain_of_sight" }) else { return out }
        out.append(Criterion(name: "accuracy_overall", value: cos.accuracy, threshold: 0.70, pass: cos.accuracy >= 0.70))
        for (type, acc) in cos.accuracyPerType.sorted(by: { $0.key < $1.key }) {
            let chance = cos.chancePerType[type] ?? 0
            out.append(
                Criterion(
                    name: "accuracy_\(type)_above_chance", value: acc - chance, threshold: 0.30,
                    pass: acc - chance >= 0.30))
        }
        let gain = cos.accuracy - cos.blindAccuracy
        out.append(Criterion(name: "accuracy_above_blind", value: gain, threshold: 0.25, pass: gain >= 0.25))
        if let at32 = arms.first(where: { $0.name == "chain_of_sight_32" }) {
            let d = cos.smallObjectAccuracy - at32.smallObjectAccuracy
            out.append(Criterion(name: "small_objects_scaled_minus_32", value: d, threshold: 0.10, pass: d >= 0.10))
        }
        if compare, let a = arms.first(where: { $0.name == "baseline_many_tokens" }) {
            let d = cos.accuracy - a.accuracy
            out.append(Criterion(name: "accuracy_minus_baseline_a", value: d, threshold: -0.01, pass: d >= -0.01))
            let r = cos.pretrainSeconds / max(a.pretrainSeconds, 1e-9)
            out.append(Criterion(name: "pretrain_time_ratio_to_baseline_a", value: r, threshold: 0.5, pass: r <= 0.5))
        }
        return out
    }

    /// Writes `summary.json`, `loss.svg` and `accuracy.svg` into `output`.
    public static func write(_ summary: Summary, to output: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try DurableFile.write(enc.encode(summary), to: output + "/summary.json")
        let loss = SVGPlot.render(
            title: "training loss (pre-training, then fine-tuning)", xLabel: "step", yLabel: "loss",
            series: summary.arms.map { a in SVGPlot.Series(name: a.name, points: a.losses.map { ($0[0], $0[1]) }) })
        try DurableFile.write(loss, to: output + "/loss.svg")
        try DurableFile.write(accuracyBars(summary.arms), to: output + "/accuracy.svg")
    }

    /// Grouped bars: accuracy per question type (and overall, small objects) per arm.
    static func accuracyBars(_ arms: [Arm]) -> String {
        let groups = ["overall", "small_object"] + Set(arms.flatMap(\.accuracyPerType.keys)).sorted()
        let (w, h, left, bottom, top) = (720.0, 360.0, 50.0, 60.0, 30.0)
        let gw = (w - left - 20) / Double(max(groups.count, 1))
        let bw = gw * 0.8 / Double(max(arms.count, 1))
        let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\">\n"
        svg += "<text x=\"\(w / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">held-out accuracy per arm</text>\n"
        let ph = h - top - bottom
        for (g, name) in groups.enumerated() {
            for (k, a) in arms.enumerated() {
                let v = name == "overall" ? a.accuracy : name == "small_object" ? a.smallObjectAccuracy : (a.accuracyPerType[name] ?? 0)
                let x = left + Double(g) * gw + Double(k) * bw
                let bh = ph * v
                svg += "<rect x=\"\(x)\" y=\(String(format: "\"%.1f\"", top + ph - bh)) width=\(String(format: "\"%.1f\"", bw)) height=\(String(format: "\"%.1f\"", bh)) fill=\"\(colours[k % colours.count])\"/>\n"
            }
            svg += "<text x=\"\(left + Double(g) * gw + gw * 0.4)\" y=\"\(h - bottom + 16)\" text-anchor=\"middle\" font-size=\"11\">\(name)</text>\n"
        }
        for (k, a) in arms.enumerated() {
            svg += "<rect x=\"\(left + Double(k) * 170)\" y=\"\(h - 24)\" width=\"10\" height=\"10\" fill=\"\(colours[k % colours.count])\"/><text x=\"\(left + Double(k) * 170 + 14)\" y=\"\(h - 15)\" font-size=\"11\">\(a.name)</text>\n"
        }
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + ph)\" stroke=\"black\"/><text x=\"\(left - 6)\" y=\"\(top + 4)\" text-anchor=\"end\" font-size=\"10\">1.0</text><text x=\"\(left - 6)\" y=\"\(top + ph)\" text-anchor=\"end\" font-size=\"10\">0</text>\n</svg>\n"
        return svg
    }
}
