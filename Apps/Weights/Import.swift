import ArgumentParser
import Checkpoint
import Foundation
import Language
import Layers
import TensorFiles
import Vision

/// Imports an HF model directory into a Sightline weights file through the real module, so every name
/// and shape is checked against the architecture (a strict load).
struct Import: ParsableCommand {
    enum Architecture: String, ExpressibleByArgument, CaseIterable {
        case clipVision = "clip-vision"
        case llama
    }

    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract:
            "Import an HF model directory (config.json + safetensors) into a Sightline HDF5 weights file.",
        discussion: """
            --arch clip-vision: a CLIP vision tower (CLIPVisionModel, or the vision half of a full CLIP
            checkpoint; keys with or without the vision_model. prefix). --arch llama: LlamaForCausalLM
            (single or sharded safetensors). The module is built from config.json and loaded strictly: any
            missing, unexpected or mis-shaped tensor is an error that names it.
            """)

    @Option(help: "Architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var arch: Architecture

    @Argument(help: "HF model directory.")
    var directory: String

    @Argument(help: "Output weights file (.h5).")
    var output: String

    @Option(help: "Stored element type: float32, float16 or bfloat16.")
    var dtype: WeightDType = .float32

    func run() throws {
        do {
            try importDirectory()
        } catch let error as DecodingError {
            throw ValidationError("\(directory)/config.json is not a \(arch.rawValue) config: \(error)")
        }
    }

    func importDirectory() throws {
        let module: Module
        let config: Data
        switch arch {
        case .clipVision:
            let model = try CLIPVisionModel.fromPretrained(directory: directory)
            module = model
            config = try JSONEncoder().encode(model.config)
        case .llama:
            // Config and tensor table first: nothing is allocated for a config the weights cannot fill.
            let configPath = directory + "/config.json"
            let llamaConfig: LlamaConfig
            do {
                llamaConfig = try LlamaConfig.load(contentsOf: URL(fileURLWithPath: configPath))
                try llamaConfig.validate()
            } catch let e as TensorError {
                throw ValidationError("\(configPath): \(e.message)")
            }
            let table = try openSafetensors(directory)
            let available = table.tensorInfos.reduce(0) { $0 &+ $1.elementCount }
            if let need = llamaConfig.checkedParameterCount, need > available {
                throw ValidationError(
                    "\(configPath) describes a model of \(need) parameters but the weights in \(table.path) hold \(available) values"
                )
            }
            let (model, _) = try LlamaForCausalLM.load(directory: URL(fileURLWithPath: directory)) { url in
                var out: [String: Tensor] = [:]
                for (name, t) in try openSafetensors(url.path).readAll() { out[name] = t }
                return out
            }
            module = model
            config = try JSONEncoder().encode(model.config)
        }
        try WeightsFile.save(
            module: module, to: output, dtype: dtype, config: String(decoding: config, as: UTF8.self),
            attributes: ["source_directory": directory, "architecture": arch.rawValue])
        print(
            "wrote \(output): \(module.stateDict().count) tensors, \(module.parameterCount()) parameters (\(arch.rawValue))"
        )
    }
}
