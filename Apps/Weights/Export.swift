import ArgumentParser
import TensorFiles
import Training

extension ExportLayout: @retroactive ExpressibleByArgument {}

/// Exports a training checkpoint (any stage) as a whole model: one HDF5 weights file, an HF Llava
/// directory or the Chain-of-Sight authors' layout.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a training checkpoint as a whole model (HDF5, HF Llava or the Chain-of-Sight authors' layout).",
        discussion: """
            CHECKPOINT is a checkpoint file, a `latest` pointer, a checkpoints directory or a stage folder
            (`trainer pretrain` / `finetune` output). --layout hdf5 (default) writes one weights file with HF
            Llava checkpoint names and the model config in the `config` attribute; LoRA adapters are merged
            with --merge-lora, otherwise the base weights go to OUT and the adapters to OUT's name with
            `.adapter` (a PEFT directory: adapter_model.safetensors + adapter_config.json, the connector in
            modules_to_save; `language_model/` inside for HF LlamaForCausalLM alone). --layout hf-llava
            writes a directory LlavaForConditionalGeneration.from_pretrained and AutoProcessor load (linear
            and mlp2x_gelu projectors); --layout cos-llava the authors' LLaVA names (model.mm_projector.*).
            Directory layouts need --merge-lora when the checkpoint has adapters, and get the tokenizer
            (tokenizer.json, tokenizer_config.json): --tokenizer, else a tokenizer.json in the run's stage
            folders (an imported model's), else the run's data.tokenizer, else the synthetic world's word
            vocabulary (as a WordLevel tokenizer) when the model has its size.
            """)

    @Argument(help: "A training checkpoint: file, `latest`, checkpoints directory or stage folder.")
    var checkpoint: String

    @Argument(help: "Output: a .h5 file (hdf5) or a directory (hf-llava, cos-llava).")
    var output: String

    @Option(help: "Stored element type: float32, float16 or bfloat16.")
    var dtype: WeightDType = .float32

    @Flag(name: .customLong("merge-lora"), help: "Merge LoRA adapters into the base weights.")
    var mergeLoRA = false

    @Option(help: "Output layout: \(ExportLayout.allCases.map(\.rawValue).joined(separator: ", ")).")
    var layout: ExportLayout = .hdf5

    @Option(help: "A HF tokenizer.json to write with a directory layout (default: the run's tokenizer).")
    var tokenizer: String?

    func run() throws {
        let source = try CheckpointModel(checkpoint: checkpoint)
        let summary = try ModelExport.export(
            source, to: output, layout: layout, dtype: dtype, mergeLoRA: mergeLoRA,
            tokenizer: tokenizer.map { ModelTokenizer.file($0) })
        if layout != .hdf5 && tokenizer == nil && source.tokenizer == nil {
            print("note: no tokenizer written (the run names none and the model's vocabulary is not the synthetic world's); pass --tokenizer")
        }
        let lora = source.lora == nil ? "" : summary.mergedLoRA ? ", LoRA merged" : ", LoRA adapter in \(summary.adapterDirectory!)"
        print(
            "wrote \(output) (\(layout.rawValue)) from \(source.path) (step \(source.step)): \(summary.tensors) tensors, \(grouped(summary.parameters)) parameters as \(dtype.rawValue)\(lora)"
        )
        for f in summary.files.dropFirst() { print("  \(f)") }
    }
}
