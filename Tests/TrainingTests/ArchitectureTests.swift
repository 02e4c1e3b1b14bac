import Foundation
import SightlineTestSupport
import TensorFiles
import Testing
import Training

/// The architecture registry: detection from `config.json` as HF's Auto classes do it, and imports
/// through the one loader.
@Suite struct ArchitectureDetection {
    /// Writes `json` as `config.json` in a fresh directory and returns the file's path.
    func config(_ json: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("arch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("config.json").path
        try json.write(toFile: file, atomically: false, encoding: .utf8)
        return file
    }

    func cleanup(_ file: String) {
        try? FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent)
    }

    @Test(arguments: [
        (#"{"model_type": "clip_vision_model"}"#, Architecture.clipVision),
        (#"{"model_type": "clip", "vision_config": {}}"#, .clipVision),
        (#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#, .llama),
        (#"{"architectures": ["CLIPVisionModelWithProjection"]}"#, .clipVision),
        (#"{"architectures": ["SomethingElse", "LlamaForCausalLM"]}"#, .llama),
        // model_type decides over architectures, as in HF's Auto classes.
        (#"{"model_type": "llama", "architectures": ["CLIPModel"]}"#, .llama),
    ])
    func detectsTheArchitecture(json: String, expected: Architecture) throws {
        let file = try config(json)
        defer { cleanup(file) }
        #expect(try Architecture.detect(configAt: file) == expected)
    }

    @Test func unknownTypesAreErrorsNamingTheFileAndTheValue() throws {
        let cases: [(String, [String])] = [
            (#"{"model_type": "mistral", "architectures": ["LlamaForCausalLM"]}"#, ["model_type 'mistral'", "llama"]),
            (#"{"architectures": ["GPT2LMHeadModel"]}"#, ["GPT2LMHeadModel", "LlamaForCausalLM"]),
            (#"{"hidden_size": 4}"#, ["neither model_type nor architectures"]),
            (#"{"model_type": 3}"#, ["model_type is not a string"]),
            ("[1, 2]", ["not a JSON object"]),
        ]
        for (json, needles) in cases {
            let file = try config(json)
            defer { cleanup(file) }
            do {
                let arch = try Architecture.detect(configAt: file)
                Issue.record("\(json) was detected as \(arch)")
            } catch let e as ArchitectureError {
                #expect(e.file == file)
                for needle in needles { #expect("\(e)".contains(needle), "\(e)") }
            }
        }
        #expect(throws: ArchitectureError(file: "/nonexistent/config.json", "no such file")) {
            try Architecture.detect(configAt: "/nonexistent/config.json")
        }
    }

    /// The fixture directories import with their architecture detected, through the one loader, and
    /// the override wins over the config.
    @Test func importsTheFixtureDirectoriesByDetection() throws {
        let clip = fixtureDirectory("vision").appendingPathComponent("clip_tiny").path
        let llama = fixtureDirectory("language").appendingPathComponent("llama_tiny").path
        let a = try ImportedModel(directory: clip)
        #expect(a.architecture == .clipVision && a.report.isClean)
        #expect(a.report.loaded.count == a.module.stateDict().count)
        let b = try ImportedModel(directory: llama)
        #expect(b.architecture == .llama && b.report.isClean)
        #expect(b.report.loaded.count == b.module.stateDict().count)
        // Forcing the wrong architecture fails (a Llama config is no CLIP config).
        #expect(throws: (any Error).self) { try ImportedModel(directory: llama, architecture: .clipVision) }
    }
}
