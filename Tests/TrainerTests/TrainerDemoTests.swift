import Datasets
import Foundation
import Language
import SightlineTestSupport
import Testing
import Training

@Suite struct TrainerStageArgumentTests {
    /// Usage errors of the new subcommands: one message, status 64.
    @Test(arguments: [
        (["generate", "--image", "x.png", "--prompt", "hi"], "Missing expected argument '--checkpoint <checkpoint>'"),
        (["generate", "--checkpoint", "c", "--image", "x.png"], "Missing expected argument '--prompt <prompt>'"),
        (
            ["generate", "--checkpoint", "c", "--image", "x.png", "--prompt", "hi", "--top-p", "0"],
            "--top-p must be in (0, 1], got 0.0"
        ),
        (["config"], "nothing to do: pass --print"),
        (["config", "--print", "--stage", "warmup"], "The value 'warmup' is invalid for '--stage <stage>'"),
        (["demo", "--threads", "0"], "--threads must be at least 1, got 0"),
        (["pretrain", "--threads", "0"], "--threads must be at least 1, got 0"),
        (["finetune", "--set"], "Missing value for '--set <set>'"),
    ])
    func usageErrors(arguments: [String], message: String) throws {
        let r = try trainer(arguments)
        #expect(r.stderr.contains(message), "\(arguments): \(r.stderr)")
        #expect(r.status == 64, "\(arguments): status \(r.status)")
        #expect(isCleanError(r))
    }

    /// Configuration errors of the stage commands: one message naming the key or file, status 1.
    @Test(arguments: ["clip", "pretrain", "scale-tokens", "finetune"])
    func configErrors(stage: String) throws {
        let dir = ScratchDirectory()
        let bad = try trainer([stage, "--set", "pretrain.optimization.stepz=3", "--output", dir.url.path])
        #expect(bad.status == 1, "\(bad.stderr)")
        #expect(bad.stderr.contains("pretrain.optimization.stepz"), "\(bad.stderr)")
        #expect(isCleanError(bad))
        let missing = try trainer([stage, "--config", dir.url.appendingPathComponent("none.yaml").path])
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(missing.stderr.contains("none.yaml"), "\(missing.stderr)")
        #expect(isCleanError(missing))
    }

    @Test func generateOnAMissingCheckpointIsOneMessage() throws {
        let r = try trainer(["generate", "--checkpoint", "/nonexistent/run", "--image", "x.png", "--prompt", "hi"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/nonexistent/run"), "\(r.stderr)")
        #expect(isCleanError(r))
    }
}

@Suite struct TrainerConfigTests {
    /// `config --print` is every default: it parses back to `TrainingConfig.defaults`.
    @Test func printedDefaultsParseBack() throws {
        let r = try trainer(["config", "--print"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try TrainingConfig.parse(r.stdout, source: "config --print") == TrainingConfig.defaults)
    }

    /// One stage's section parses back into the defaults of that stage.
    @Test func printedStageSectionParsesBack() throws {
        let r = try trainer(["config", "--print", "--stage", "finetune"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("finetune:"))
        #expect(!r.stdout.contains("pretrain:"))
        #expect(try TrainingConfig.parse(r.stdout, source: "config --print --stage finetune") == TrainingConfig.defaults)
        var changed = TrainingConfig.defaults
        changed.finetune.lora.r = 3
        #expect(try TrainingConfig.parse(r.stdout.replacingOccurrences(of: "r: 8", with: "r: 3")) == changed)
    }
}

@Suite(.serialized) struct TrainerDemoTests {
    /// `demo --quick` end to end: every stage runs, summary.json has the arms and criteria, the plots
    /// exist, and the run's many atomic writes (configs, stage reports, plots redrawn, eval.json) leave
    /// nothing in its temporary directory; then `generate` on a held-out image equals greedy decoding
    /// through the library.
    @Test func quickDemoThenGenerate() throws {
        let dir = ScratchDirectory()
        let out = dir.url.appendingPathComponent("demo").path
        let tmp = dir.url.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: false)
        let r = try trainer(
            ["demo", "--quick", "--output", out, "--threads", "1"], environment: ["TMPDIR": tmp.path])
        #expect(r.status == 0, "\(r.stderr)")
        let leftInTmp = try FileManager.default.contentsOfDirectory(atPath: tmp.path)
        #expect(!leftInTmp.contains { $0.hasPrefix("TemporaryDirectory.") }, "left in TMPDIR: \(leftInTmp)")
        #expect(r.stdout.contains("criteria:"))
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let arms = try #require(json["arms"] as? [[String: Any]])
        #expect(arms.compactMap { $0["name"] as? String } == ["chain_of_sight", "chain_of_sight_32"])
        let armKeys = [
            "name", "pretrain_tokens", "finetune_tokens", "pretrain_steps", "finetune_steps", "pretrain_seconds",
            "finetune_seconds", "pretrain_final_loss", "finetune_final_loss", "accuracy", "accuracy_per_type",
            "small_object_accuracy", "blind_accuracy", "chance",
        ]
        for a in arms { for k in armKeys { #expect(a[k] != nil, "arm \(a["name"] ?? "?") lacks \(k)") } }
        #expect(arms[0]["pretrain_tokens"] as? Int == 32)
        #expect((arms[0]["finetune_tokens"] as? Int ?? 0) >= 4 * 32)
        #expect(arms[1]["finetune_tokens"] as? Int == 32)
        let perType = try #require(arms[0]["accuracy_per_type"] as? [String: Double])
        #expect(Set(perType.keys) == Set(SyntheticWorld.Question.Kind.allCases.map(\.rawValue)))
        let criteria = try #require(json["criteria"] as? [[String: Any]])
        #expect(criteria.count >= 4)
        for c in criteria {
            for k in ["name", "value", "threshold", "pass"] { #expect(c[k] != nil, "criterion lacks \(k)") }
            let value = try #require(c["value"] as? Double), threshold = try #require(c["threshold"] as? Double)
            let name = c["name"] as? String ?? ""
            let expected = name.contains("ratio") ? value <= threshold : value >= threshold
            #expect(c["pass"] as? Bool == expected, "\(name)")
        }
        #expect(criteria.contains { $0["name"] as? String == "accuracy_overall" && $0["threshold"] as? Double == 0.7 })
        for plot in ["loss.svg", "accuracy.svg"] {
            let svg = try String(contentsOfFile: out + "/" + plot, encoding: .utf8)
            #expect(svg.hasPrefix("<svg") && svg.contains("chain_of_sight_32"), "\(plot)")
        }
        #expect(FileManager.default.fileExists(atPath: out + "/chain_of_sight/eval.json"))
        // The stages write the run folder's metrics: every pretrain and finetune step in metrics.jsonl.
        let records = try JSONLMetricsSink.read(path: out + "/chain_of_sight/metrics.jsonl")
        let quick = Demo.config(quick: true)
        for (stage, steps) in [("pretrain", quick.pretrain.optimization.steps), ("finetune", quick.finetune.optimization.steps)] {
            let logged = records.filter { $0.stage == stage && $0.scalars["loss"] != nil }.map(\.step)
            #expect(logged == Array(1...steps), "\(stage) steps in metrics.jsonl: \(logged)")
        }
        #expect(FileManager.default.fileExists(atPath: out + "/chain_of_sight/loss.svg"))

        // generate == greedy decoding through the library (the batched evaluation path).
        let sizes = Demo.config(quick: true).data.synthetic
        let world = try SyntheticWorld(seed: 0, imageSize: sizes.imageSize, patchSize: sizes.patchSize)
        let (scene, questions) = world.instruction(0, split: .heldOut)
        let image = dir.url.appendingPathComponent("scene.png")
        try world.png(scene).write(to: image)
        let checkpoint = out + "/chain_of_sight/finetune"
        let g = try trainer([
            "generate", "--checkpoint", checkpoint, "--image", image.path, "--prompt", questions[0].question,
            "--max-new-tokens", "6",
        ])
        #expect(g.status == 0, "\(g.stderr)")
        let model = try StageModels.load(directory: checkpoint)
        model.eval()
        let pixels = try PipelineImages.clip(size: sizes.imageSize)(world.render(scene)).pixels
        let expected = try AnswerEvaluation.answer(
            model: model, pixels: pixels, questions: [questions[0].question], blind: false,
            options: .greedy(maxNewTokens: 6, stopTokens: AnswerEvaluation.stopTokens()))[0]
        #expect(g.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected)

        // eval --checkpoint on a QA JSONL file of held-out questions: eval.json with the blind baseline.
        var lines: [String] = []
        for (k, q) in questions.enumerated() {
            let o: [String: Any] = ["id": "q\(k)", "question": q.question, "answer": q.answer, "type": q.kind.rawValue, "image": "scene.png"]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self))
        }
        let qa = try dir.write("qa.jsonl", lines.joined(separator: "\n") + "\n")
        let e = try trainer([
            "eval", "--checkpoint", checkpoint, "--data", qa.path, "--output", dir.url.appendingPathComponent("ev").path,
        ])
        #expect(e.status == 0, "\(e.stderr)")
        let report = try Data(contentsOf: dir.url.appendingPathComponent("ev/eval.json"))
        let ej = try #require(try JSONSerialization.jsonObject(with: report) as? [String: Any])
        let answers = try #require(ej["answers"] as? [String: Any])
        let overall = try #require(answers["overall"] as? [String: Any])
        #expect(overall["questions"] as? Int == questions.count)
        #expect(ej["blind"] != nil)
    }
}
