import ArgumentParser
import TensorFiles
import Training

extension Architecture: @retroactive ExpressibleByArgument {}

/// Imports an HF model directory into a Sightline weights file through the real module, so every name
/// and shape is checked against the architecture (a strict load).
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract:
            "Import an HF model directory (config.json + safetensors) into a Sightline HDF5 weights file.",
        discussion: """
            The architecture comes from config.json (model_type, else architectures, as HF's Auto classes
            decide): clip / clip_vision_model is a CLIP vision tower (CLIPVisionModel, or the vision half
            of a full CLIP checkpoint; keys with or without the vision_model. prefix), llama is
            LlamaForCausalLM (single or sharded safetensors), llava is LlavaForConditionalGeneration
            (transformers 4 or 5 names) and llava_llama the Chain-of-Sight authors' LLaVA layout: these
            two are whole models, written as one whole-model .h5, or, when OUT has no .h5 extension, as a
            stage folder (vision/, connector/, language/, model.h5, and the directory's tokenizer.json and
            tokenizer_config.json when Sightline's tokenizer reads them) that `trainer finetune` starts
            from. --arch overrides the detection. The module is
            built from config.json and loaded strictly: any missing, unexpected or mis-shaped tensor is an
            error that names it.
            """)

    @Option(help: "Architecture (default: from config.json): \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var arch: Architecture?

    @Argument(help: "HF model directory.")
    var directory: String

    @Argument(help: "Output weights file (.h5), or a stage folder for a whole model.")
    var output: String

    @Option(help: "Stored element type: float32, float16 or bfloat16.")
    var dtype: WeightDType = .float32

    func run() throws {
        let imported: ImportedModel
        do {
            imported = try ImportedModel(directory: directory, architecture: arch)
        } catch let error as DecodingError {
            throw ValidationError("\(directory)/config.json is not a \(arch?.rawValue ?? "valid") config: \(error)")
        }
        try imported.write(to: output, dtype: dtype, sourceDirectory: directory)
        let module = imported.module
        if imported.isMultimodal && !output.hasSuffix(".h5") && !output.hasSuffix(".hdf5") {
            let tokenizer = imported.tokenizer.map { ", tokenizer.json (\($0.vocabularySize) ids)" } ?? ""
            print("wrote the stage folder \(output) (vision/, connector/, language/, model.h5\(tokenizer)): \(module.parameterCount()) parameters (\(imported.architecture.rawValue)); `trainer finetune` starts from it")
            if let note = imported.tokenizerNote { print("note: \(note)") }
            return
        }
        print(
            "wrote \(output): \(module.stateDict().count) tensors, \(module.parameterCount()) parameters (\(imported.architecture.rawValue))"
        )
    }
}
