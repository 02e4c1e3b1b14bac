import Foundation
import Testing
import Training

/// A fresh temporary directory for one test.
func scratchDirectory(_ name: String) throws -> String {
    let dir = NSTemporaryDirectory() + "sightline-training-\(name)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct ConfigTests {
    @Test func defaultsRoundTripThroughYAML() throws {
        let text = try TrainingConfig.defaults.yaml()
        // Every section and a few leaves are written out.
        for key in ["run:", "model:", "data:", "metrics:", "clip:", "pretrain:", "scale-tokens:", "finetune:",
            "  optimization:", "    warmup_steps: 100", "  lora:", "    target_modules: [q_proj"]
        {
            #expect(text.contains("\n" + key) || text.hasPrefix(key), "missing \(key)")
        }
        let back = try TrainingConfig.parse(text, source: "defaults.yaml")
        #expect(back == TrainingConfig.defaults)
        // Commented form reads back too.
        let commented = try TrainingConfig.defaults.yaml(comments: true)
        #expect(commented.contains("# Seeds every generator"))
        #expect(try TrainingConfig.parse(commented) == TrainingConfig.defaults)
    }

    @Test func partialFileKeepsDefaultsAndTypesValues() throws {
        let text = """
            run:
              output: /tmp/run-a
            pretrain:
              optimization:
                steps: 20
                lr: auto
                weight_decay: 0   # an integer where a number is expected
            finetune:
              lora:
                r: 4
                target_modules: [q_proj, v_proj]
            """
        let c = try TrainingConfig.parse(text, source: "run.yaml")
        #expect(c.run.output == "/tmp/run-a")
        #expect(c.pretrain.optimization.steps == 20)
        #expect(c.pretrain.optimization.lr == .auto)
        #expect(c.pretrain.optimization.weightDecay == 0)
        #expect(c.finetune.lora.r == 4)
        #expect(c.finetune.lora.targetModules == ["q_proj", "v_proj"])
        #expect(c.clip == TrainingConfig.defaults.clip)
    }

    @Test func unknownKeyNamesPathFileAndLine() throws {
        let text = """
            pretrain:
              optimization:
                steps: 20
                warmup_stpes: 5
            """
        do {
            _ = try TrainingConfig.parse(text, source: "run.yaml")
            Issue.record("an unknown key was accepted")
        } catch let e as ConfigError {
            #expect(e.keyPath == "pretrain.optimization.warmup_stpes")
            #expect(e.source == "run.yaml")
            #expect(e.line == 4)
            #expect(e.description.contains("run.yaml:4"))
            #expect(e.description.contains("warmup_steps"))  // lists the valid keys
        }
    }

    @Test func wrongTypeNamesPathFileAndLine() throws {
        let cases: [(String, String, Int)] = [
            ("clip:\n  optimization:\n    steps: many\n", "clip.optimization.steps", 3),
            ("metrics:\n  tensorboard: 3\n", "metrics.tensorboard", 2),
            ("finetune:\n  lora: 8\n", "finetune.lora", 2),
            ("finetune:\n  lora:\n    target_modules: q_proj\n", "finetune.lora.target_modules", 3),
            ("pretrain:\n  optimization:\n    lr: fast\n", "pretrain.optimization.lr", 3),
        ]
        for (text, path, line) in cases {
            do {
                _ = try TrainingConfig.parse(text, source: "bad.yaml")
                Issue.record("accepted \(text)")
            } catch let e as ConfigError {
                #expect(e.keyPath == path, "\(e)")
                #expect(e.source == "bad.yaml")
                #expect(e.line == line, "\(e)")
            }
        }
    }

    @Test func invalidValuesAndYAMLAreReported() throws {
        #expect(throws: ConfigError.self) { try TrainingConfig.parse("scale-tokens:\n  extension: nope\n") }
        #expect(throws: ConfigError.self) { try TrainingConfig.parse("pretrain:\n  vision: half\n") }
        do {
            _ = try TrainingConfig.parse("run:\n  output: [unclosed\n", source: "broken.yaml")
            Issue.record("invalid YAML accepted")
        } catch let e as ConfigError {
            #expect(e.source == "broken.yaml")
            #expect(e.line != nil)
        }
        do {
            _ = try TrainingConfig.parse(
                "pretrain:\n  optimization:\n    global_batch: 6\n    micro_batch: 4\n", source: "b.yaml")
            Issue.record("a global batch that is not a multiple of the micro-batch was accepted")
        } catch let e as ConfigError {
            #expect(e.keyPath == "pretrain.optimization.global_batch")
            #expect(e.line == 3)
        }
    }

    @Test func overridesAreTypedByTheDefault() throws {
        let c = try TrainingConfig.defaults.applying(overrides: [
            "pretrain.optimization.steps=7", "pretrain.optimization.lr=3e-4", "clip.optimization.lr=auto",
            "run.output=/tmp/x y", "finetune.lora.target_modules=[q_proj]", "metrics.tensorboard=false",
            "scale-tokens.image_size=336", "model.vision.hidden_size=64",
        ])
        #expect(c.pretrain.optimization.steps == 7)
        #expect(c.pretrain.optimization.lr == .fixed(3e-4))
        #expect(c.clip.optimization.lr == .auto)
        #expect(c.run.output == "/tmp/x y")
        #expect(c.finetune.lora.targetModules == ["q_proj"])
        #expect(c.metrics.tensorboard == false)
        #expect(c.scaleTokens.imageSize == 336)
        #expect(c.model.vision.hiddenSize == 64)
        let bad: [(String, String)] = [
            ("pretrain.optimization.stepz=3", "pretrain.optimization.stepz"),
            ("pretrain.optimization.steps=3.5", "pretrain.optimization.steps"),
            ("metrics.tensorboard=yes please", "metrics.tensorboard"),
            ("run.output.deeper=1", "run.output.deeper"),
            ("finetune.lora.r", ""),
        ]
        for (o, path) in bad {
            do {
                _ = try TrainingConfig.defaults.applying(overrides: [o])
                Issue.record("override \(o) accepted")
            } catch let e as ConfigError {
                #expect(e.keyPath == path, "\(e)")
                #expect(e.source == "override '\(o)'")
            }
        }
    }

    @Test func loadAppliesOverridesAfterTheFileAndSaveReadsBack() throws {
        let dir = try scratchDirectory("config")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/run.yaml"
        try "pretrain:\n  optimization:\n    steps: 20\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try TrainingConfig.load(path: path, overrides: ["pretrain.optimization.steps=30"])
        #expect(c.pretrain.optimization.steps == 30)
        try c.save(to: dir + "/resolved.yaml")
        #expect(try TrainingConfig.load(path: dir + "/resolved.yaml") == c)
        do {
            _ = try TrainingConfig.load(path: dir + "/missing.yaml")
            Issue.record("a missing file was accepted")
        } catch let e as ConfigError {
            #expect(e.source == dir + "/missing.yaml")
        }
    }

    /// The data-parallel settings are config keys like any other: written out with their defaults,
    /// read from a file and from overrides, typed, and checked with the key and file named.
    @Test func dataParallelSectionIsConfigurable() throws {
        let text = try TrainingConfig.defaults.yaml()
        #expect(text.contains("\ndata_parallel:\n  bucket_mb: 25"), "\(text.suffix(200))")
        #expect(text.contains("\n  overlap: true\n  zero_stage: 0"))
        #expect(TrainingConfig.defaults.dataParallel == DataParallelConfig())
        let c = try TrainingConfig.parse(
            "data_parallel:\n  bucket_mb: 4\n  overlap: false\n  zero_stage: 1\n", source: "dp.yaml")
        #expect(c.dataParallel == DataParallelConfig(bucketMegabytes: 4, overlap: false, zeroStage: 1))
        let o = try c.applying(overrides: ["data_parallel.bucket_mb=0.5", "data_parallel.overlap=true"])
        #expect(o.dataParallel == DataParallelConfig(bucketMegabytes: 0.5, overlap: true, zeroStage: 1))
        let bad: [(String, String, Int)] = [
            ("data_parallel:\n  bucket_size: 4\n", "data_parallel.bucket_size", 2),
            ("data_parallel:\n  overlap: sometimes\n", "data_parallel.overlap", 2),
            ("data_parallel:\n  zero_stage: one\n", "data_parallel.zero_stage", 2),
            ("data_parallel:\n  zero_stage: 2\n", "data_parallel.zero_stage", 2),
            ("data_parallel:\n  overlap: true\n  bucket_mb: 0\n", "data_parallel.bucket_mb", 3),
        ]
        for (text, path, line) in bad {
            do {
                _ = try TrainingConfig.parse(text, source: "dp.yaml")
                Issue.record("accepted \(text)")
            } catch let e as ConfigError {
                #expect(e.keyPath == path, "\(e)")
                #expect(e.source == "dp.yaml" && e.line == line, "\(e)")
                #expect(e.description.contains("dp.yaml:\(line)"), "\(e)")
            }
        }
        do {
            _ = try TrainingConfig.defaults.applying(overrides: ["data_parallel.zero_stage=3"])
            Issue.record("zero_stage 3 accepted")
        } catch let e as ConfigError {
            #expect(e.keyPath == "data_parallel.zero_stage" && e.source == "override 'data_parallel.zero_stage=3'", "\(e)")
        }
    }

    /// docs/training.md's config reference is the defaults with their comments (regenerate with
    /// `SIGHTLINE_WRITE_DOCS=1 swift test -c release --filter docsReferenceIsTheDefaults`).
    @Test func docsReferenceIsTheDefaults() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/training.md").path
        var doc = try String(contentsOfFile: path, encoding: .utf8)
        let (begin, end) = ("<!-- config-reference:begin -->\n", "<!-- config-reference:end -->")
        let block = begin + "```yaml\n" + (try TrainingConfig.defaults.yaml(comments: true)) + "```\n" + end
        if ProcessInfo.processInfo.environment["SIGHTLINE_WRITE_DOCS"] == "1",
            let a = doc.range(of: begin), let b = doc.range(of: end)
        {
            doc.replaceSubrange(a.lowerBound..<b.upperBound, with: block)
            try doc.write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(doc.contains(block), "docs/training.md's config reference is out of date")
    }
}
