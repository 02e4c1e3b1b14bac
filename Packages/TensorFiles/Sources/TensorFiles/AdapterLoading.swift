import Foundation
import Layers
import Tensor

// PEFT LoRA adapters load through the one weight loader like every other weights file: the load rules
// are a `LoadOptions` preset (`peftAdapter`), the expected tensors are the attached adapters'
// (`Module.loraSavedParameters`), and the result is a `LoadReport`.

extension LoadOptions {
    /// The load rules of a PEFT adapter file (`adapter_model.safetensors` or `adapter_model.bin`):
    /// every key carries PEFT's `base_model.model.` prefix (keys without it are skipped and reported),
    /// and the adapter-name segment PEFT's in-memory names insert (`q_proj.lora_A.default.weight`,
    /// `lm_head.modules_to_save.default.weight`) is removed when present, so both a saved file and a
    /// raw PEFT state dict load. Nothing is a derived buffer here.
    /// - Parameters:
    ///   - adapterName: the adapter-name segment to remove (PEFT's default adapter is `default`).
    ///   - strict: throw on any missing, unexpected or mis-shaped adapter tensor (the default).
    public static func peftAdapter(adapterName: String = "default", strict: Bool = true) -> LoadOptions {
        LoadOptions(
            strict: strict, ignored: [], keyPrefix: peftPrefix,
            keyRewrites: [
                KeyRewrite(".lora_A.\(adapterName).", ".lora_A."), KeyRewrite(".lora_B.\(adapterName).", ".lora_B."),
                KeyRewrite(".modules_to_save.\(adapterName).", "."),
            ])
    }
}

extension WeightLoader {
    /// Loads a PEFT adapter's tensors into the adapters already attached to `module` (with the same
    /// config: `module.attachLoRA(config)`) and into the parameters of `config.modulesToSave`.
    /// - Parameters:
    ///   - source: an adapter file (`openTensorSource("adapter_model.safetensors")`, a `.bin`) or
    ///     tensors in memory (`InMemoryTensors(module.loraStateDict(config))`).
    ///   - options: the match rules; `LoadOptions.peftAdapter()` unless the file differs.
    /// - Returns: the report: `loaded` names every adapter tensor (`<module>.lora_A.weight`, ...).
    /// - Throws: `LoadError` listing every missing, unexpected or mis-shaped tensor in a strict load
    ///   (nothing is changed then); `TensorFileError` when a tensor cannot be read.
    @discardableResult
    public static func loadLoRAAdapter(
        _ source: TensorSource, into module: Module, config: LoRAConfig,
        options: LoadOptions = .peftAdapter()
    ) throws -> LoadReport {
        let slots = module.loraSavedParameters(config).map { ($0.0, TensorSlot.parameter($0.1)) }
        guard !slots.isEmpty else {
            throw TensorFileError(file: source.path, "the model has no LoRA adapter attached (attachLoRA first)")
        }
        return try load(source, into: slots, options: options)
    }

    /// Loads a PEFT adapter directory (as `save_pretrained` writes it): reads `adapter_config.json`,
    /// attaches fresh adapters to `module` with it (freezing the base model, as PEFT does), then loads
    /// `adapter_model.safetensors`, or `adapter_model.bin` when there is no safetensors file.
    /// - Returns: the adapter's config and the load report.
    /// - Throws: `TensorFileError` naming the directory when a file is missing or the config does not
    ///   decode; `TensorError` when the config matches no module; `LoadError` as `loadLoRAAdapter`.
    @discardableResult
    public static func loadPEFTAdapter(
        directory: String, into module: Module, options: LoadOptions = .peftAdapter()
    ) throws -> (config: LoRAConfig, report: LoadReport) {
        let dir = URL(fileURLWithPath: directory)
        let configPath = dir.appendingPathComponent("adapter_config.json").path
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw TensorFileError(file: configPath, "no such file (not a PEFT adapter directory)")
        }
        let config: LoRAConfig
        do { config = try JSONDecoder().decode(LoRAConfig.self, from: data) } catch {
            throw TensorFileError(file: configPath, "not a LoRA adapter config: \(error)")
        }
        let weights = ["adapter_model.safetensors", "adapter_model.bin"].map { dir.appendingPathComponent($0).path }
        guard let file = weights.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw TensorFileError(file: directory, "no adapter_model.safetensors or adapter_model.bin")
        }
        let source = try openTensorSource(file)
        try module.attachLoRA(config)
        return (config, try loadLoRAAdapter(source, into: module, config: config, options: options))
    }
}
