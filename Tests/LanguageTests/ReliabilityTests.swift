import Foundation
import Language
import SightlineTestSupport
import Testing

/// Hostile or damaged HF Llama directories: every problem is an error naming the file, found before
/// memory is taken for the model.
@Suite struct LlamaDirectoryReliabilityTests {
    static let fixture = fixtureDirectory("language").appendingPathComponent("llama_tiny")

    /// A copy of the tiny fixture directory whose config.json has `edit` applied.
    func directory(_ tag: String, edit: (inout [String: Any]) -> Void) throws -> URL {
        let dir = try freshTemporaryDirectory("rel-\(tag)")
        try FileManager.default.copyItem(
            at: Self.fixture.appendingPathComponent("model.safetensors"),
            to: dir.appendingPathComponent("model.safetensors"))
        var config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture.appendingPathComponent("config.json")))
            as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    func loadError(_ dir: URL) -> String? {
        do {
            _ = try LlamaForCausalLM.fromPretrained(directory: dir.path)
            return nil
        } catch { return "\(error)" }
    }

    /// Absurd sizes, an empty config, an unknown activation and a zero RoPE base are refused before
    /// the model is built, naming config.json (hidden_size 10^9 once allocated gigabytes; 2^62 trapped).
    @Test func badConfigsAreRefusedBeforeBuilding() throws {
        let cases: [(String, (inout [String: Any]) -> Void, String)] = [
            ("huge", { $0["hidden_size"] = 1_000_000_000 }, "hidden_size"),
            ("overflow", { $0["hidden_size"] = 1 << 62; $0["vocab_size"] = 1 << 62 }, "over the limit"),
            ("layers", { $0["num_hidden_layers"] = 1 << 40 }, "num_hidden_layers"),
            ("empty", { $0 = [:] }, "config.json"),
            ("act", { $0["hidden_act"] = "gelu" }, "hidden_act"),
            ("theta", {
                $0["rope_parameters"] = nil
                $0["rope_theta"] = 0
            }, "rope_theta"),
            ("nan", { $0["rms_norm_eps"] = -1 }, "rms_norm_eps"),
        ]
        for (tag, edit, expected) in cases {
            let dir = try directory(tag, edit: edit)
            defer { try? FileManager.default.removeItem(at: dir) }
            let text = loadError(dir)
            #expect(text?.contains(dir.path + "/config.json") == true, "\(tag): \(text ?? "loaded")")
            #expect(text?.contains(expected) == true, "\(tag): \(text ?? "loaded")")
        }
    }

    /// A shard index naming a path outside the directory, omitting a key, or naming the wrong shard is
    /// an error naming the index file (the same checks as the CLIP path).
    @Test func shardIndexesAreChecked() throws {
        let model = try LlamaForCausalLM.fromPretrained(directory: Self.fixture.path).model
        let keys = try model.huggingFaceStateDict().map { $0.0 }
        func sharded(_ tag: String, _ map: [String: String]) throws -> (URL, String?) {
            let dir = try directory(tag) { _ in }
            let fm = FileManager.default
            try fm.moveItem(
                at: dir.appendingPathComponent("model.safetensors"),
                to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
            try fm.copyItem(
                at: dir.appendingPathComponent("model-00001-of-00002.safetensors"),
                to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
            let index = ["metadata": [:], "weight_map": map] as [String: Any]
            try JSONSerialization.data(withJSONObject: index).write(
                to: dir.appendingPathComponent("model.safetensors.index.json"))
            return (dir, loadError(dir))
        }
        var all: [String: String] = [:]
        for k in keys { all[k] = "model-00001-of-00002.safetensors" }
        let (good, ok) = try sharded("good", all)
        try? FileManager.default.removeItem(at: good)
        #expect(ok == nil, "\(ok ?? "")")
        var escape = all
        escape[keys[0]] = "../../etc/passwd"
        var omitted = all
        omitted[keys[1]] = nil
        var wrong = all
        wrong[keys[2]] = "model-00002-of-00002.safetensors"
        for (tag, map, expected) in [
            ("escape", escape, "not a plain file name"), ("omitted", omitted, "not in weight_map"),
            ("wrong", wrong, "weight_map says"),
        ] {
            let (dir, text) = try sharded(tag, map)
            defer { try? FileManager.default.removeItem(at: dir) }
            #expect(text?.contains(dir.path + "/model.safetensors.index.json") == true, "\(tag): \(text ?? "loaded")")
            #expect(text?.contains(expected) == true, "\(tag): \(text ?? "loaded")")
        }
    }
}
