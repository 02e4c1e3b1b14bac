import Bridges
import Datasets
import Dispatch
import Foundation
import Language
import Optim
import Tensor
import Training
import Vision
import Yams

// The training step of the real `MultimodalModel` through the real `Trainer.step` (frozen CLIP tower,
// connector, Llama decoder; AdamW with clipping and z-loss), on the configurations of
// `Benchmarks/configs/*.yaml`, which `scripts/bench_torch.py` reads for the same models in PyTorch.
//
//   sightline-bench model --config small --connector cos32 --steps 10 --warmup 3 --json out.json
//
// Per run: median step time over `steps` timed steps after `warmup`, the phases (forward, backward,
// clip + optimizer), tokens/s, the model FLOPs of a step (`stepFLOPs`, docs/benchmarks.md) and the
// GFLOP/s achieved as a fraction of `cblas_sgemm` 1024^3 measured in the same process, peak RSS,
// malloc calls per steady-state step, the BLAS kernel and thread count.

/// One benchmark configuration file: the loop's own `ModelConfig` and `OptimizationConfig`, the batch
/// shape, and the connector sweep.
struct BenchModelFile: Decodable {
    struct NamedConnector: Decodable {
        var name: String
        var label: String
        var config: ConnectorConfiguration
    }
    var name: String
    var batch: Int
    var textTokens: Int
    var connectors: [NamedConnector]
    var model: ModelConfig
    var optimization: OptimizationConfig

    enum CodingKeys: String, CodingKey {
        case name, batch, textTokens = "text_tokens", connectors, model, optimization
    }

    /// `Benchmarks/configs/<name>.yaml` (or a path). YAML is read as a tree and decoded through JSON,
    /// as the trainer reads its config (numbers stay numbers).
    static func load(_ nameOrPath: String) throws -> BenchModelFile {
        let path =
            nameOrPath.hasSuffix(".yaml")
            ? nameOrPath
            : URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("configs/\(nameOrPath).yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let tree = try Yams.load(yaml: text) else { throw BenchError("\(path): empty file") }
        let data = try JSONSerialization.data(withJSONObject: tree)
        do {
            return try JSONDecoder().decode(BenchModelFile.self, from: data)
        } catch {
            throw BenchError("\(path): \(error)")
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The model FLOPs of one training step (multiply-adds of every matrix product and convolution
/// counted as 2; elementwise work, norms and softmax not counted). The tower is frozen: forward only.
/// The connector, decoder and head train: 3x their forward (forward, input and weight gradients).
/// Attention counts the full T x T score matrix (4 B T^2 C per layer), causal or not.
struct StepFLOPs {
    var vision: Double
    var connector: Double
    var decoder: Double
    var head: Double
    var total: Double { vision + 3 * (connector + decoder + head) }
}

func stepFLOPs(
    vision v: CLIPVisionConfig, connector: ConnectorConfiguration, language l: LlamaConfig, batch: Int,
    imageTokens: Int, textTokens: Int
) -> StepFLOPs {
    let b = Double(batch)
    let side = v.imageSize / v.patchSize
    let p = Double(side * side)
    let cv = Double(v.hiddenSize)
    let sv = p + 1
    var vision = 2 * b * p * 3 * Double(v.patchSize * v.patchSize) * cv
    let layers = connector.featureLevels.map { $0 < 0 ? v.numHiddenLayers + 1 + $0 : $0 }.max() ?? v.numHiddenLayers
    vision +=
        Double(layers)
        * (2 * b * sv * (4 * cv * cv + 2 * cv * Double(v.intermediateSize)) + 4 * b * sv * sv * cv)
    var conn = 0.0
    switch connector {
    case .projection(let c):
        conn = 2 * b * p * cv * Double(c.llmDim) + Double(c.depth - 1) * 2 * b * p * Double(c.llmDim * c.llmDim)
    case .averagePooling(let c):
        conn = 2 * b * Double(c.outputGrid.count) * cv * Double(c.llmDim)
    case .attentionPooling(let c):
        let q = Double(c.queries)
        conn = 2 * b * (q * 2 * cv * cv + p * 2 * cv * cv + 2 * q * p * cv) + 2 * b * q * cv * Double(c.llmDim)
    case .cAbstractor(let c):
        let h = Double(c.hiddenSize), m = Double(c.numQueries)
        func stage(_ n: Double, _ cin: Double) -> Double {
            var f = 0.0
            for i in 0..<c.depth {
                let input = i == 0 ? cin : h
                f += 2 * n * input * h + 18 * n * h + 2 * n * h * h
                if input != h { f += 2 * n * input * h }
            }
            return f
        }
        conn = b * (stage(p, cv) + stage(m, h) + 2 * m * h * Double(c.llmDim) + Double(c.mlpDepth - 1) * 2 * m * Double(c.llmDim * c.llmDim))
    case .chainOfSight(let c):
        let d = Double(c.dim)
        for _ in c.featureLevels {
            for s in c.scales {
                let q = Double(s.queries), w = Double(s.windowSize * s.windowSize)
                conn += 2 * b * p * cv * 2 * d + 2 * b * q * d * d * 2 + 4 * b * q * w * d
                    + 2 * b * q * d * Double(c.mlpRatio) * d * 2
            }
        }
        conn += 2 * b * Double(c.totalQueries) * d * Double(c.llmDim)
    }
    let h = Double(l.hiddenSize)
    let kv = Double(l.numKeyValueHeads * l.headDim)
    let t = Double(imageTokens + textTokens)
    let decoder =
        Double(l.numHiddenLayers)
        * (2 * b * t * (2 * h * h + 2 * h * kv + 3 * h * Double(l.intermediateSize)) + 4 * b * t * t * h)
    let head = 2 * b * Double(textTokens) * h * Double(l.vocabSize)
    return StepFLOPs(vision: vision, connector: conn, decoder: decoder, head: head)
}

/// The same micro-batch every step.
final class RepeatingStream: BatchStream {
    let batch: PackedBatch
    init(_ batch: PackedBatch) { self.batch = batch }
    func next() throws -> PackedBatch { batch }
    func cursorJSON() throws -> String { "{}" }
}

/// `batch` rows of [image placeholders, text tokens]: one image per row, one document, no padding;
/// the text tokens are supervised (HF labels), the placeholders not.
func benchBatch(_ file: BenchModelFile, imageTokens: Int, seed: UInt64) throws -> PackedBatch {
    var g = RandomGenerator(seed: seed)
    let b = file.batch, t = imageTokens + file.textTokens
    let v = file.model.languageModel.vocabSize, image = file.model.imageTokenId
    var tokens: [Int] = [], labels: [Int] = []
    var state = seed  // splitmix64 for the token ids
    func nextWord() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    for _ in 0..<b {
        for _ in 0..<imageTokens {
            tokens.append(image)
            labels.append(-100)
        }
        for _ in 0..<file.textTokens {
            var id = image
            while id == image { id = Int(nextWord() % UInt64(v)) }
            tokens.append(id)
            labels.append(id)
        }
    }
    let s = file.model.vision.imageSize
    return try PackedBatch(
        tokens: IndexTensor(shape: [b, t], values: tokens), labels: IndexTensor(shape: [b, t], values: labels),
        documentIds: IndexTensor(shape: [b, t], values: [Int](repeating: 0, count: b * t)),
        positionIds: IndexTensor(shape: [b, t], values: (0..<b).flatMap { _ in Array(0..<t) }),
        placeholders: (0..<b).map { ImagePlaceholder(row: $0, start: 0, length: imageTokens, crops: 1) },
        images: Tensor.normal([b, 3, s, s], generator: &g))
}

/// Peak resident set size of the process in MB.
func peakRSSMegabytes() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_maxrss) / 1024
}

/// Best and median `cblas_sgemm` 1024^3 GFLOP/s over `repeats` calls (after 2 warm-up calls).
func sgemmGFLOPs(n: Int = 1024, repeats: Int = 10) -> (best: Double, median: Double) {
    var g = RandomGenerator(seed: 1)
    let a = Tensor.uniform([n, n], generator: &g), b = Tensor.uniform([n, n], generator: &g)
    var c = [Float](repeating: 0, count: n * n)
    let flops = 2 * Double(n * n * n) * 1e-9
    return a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            measure(repeats: repeats, work: flops) {
                BLAS.sgemm(
                    transA: false, transB: false, m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pb.baseAddress!,
                    ldb: n, c: &c, ldc: n)
            }
        }
    }
}

func median(_ x: [Double]) -> Double {
    let s = x.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Runs the training-step benchmark; returns the JSON object it prints.
func modelSuite(
    config name: String, connectors: [String]?, steps: Int, warmup: Int, sgemmSize: Int = 1024
) throws -> [[String: Any]] {
    let file = try BenchModelFile.load(name)
    let chosen = connectors.map { names in file.connectors.filter { names.contains($0.name) } } ?? [file.connectors[0]]
    if let names = connectors, chosen.count != names.count {
        throw BenchError(
            "\(file.name): unknown connector in \(names) (known: \(file.connectors.map(\.name).joined(separator: ", ")))")
    }
    let blas = ComputeRuntime.blas()
    var results: [[String: Any]] = []
    for connector in chosen {
        var modelConfig = file.model
        modelConfig.connector = connector.config
        let model = try MultimodalModel(config: modelConfig)
        let grid = Grid.square(modelConfig.vision.imageSize / modelConfig.vision.patchSize)
        let imageTokens = try model.connector.tokenCount(grid: grid)
        let batch = try benchBatch(file, imageTokens: imageTokens, seed: 7)
        let stream = RepeatingStream(batch)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-bench-\(getpid())").path
        let trainer = try Trainer(
            stage: "bench", model: model, optimization: file.optimization, checkpointDirectory: scratch,
            data: DataFeed { _ in stream })
        model.train()
        for _ in 0..<warmup { _ = try trainer.step(stream) }
        var times: [Double] = [], fwd: [Double] = [], bwd: [Double] = [], opt: [Double] = []
        var losses: [Double] = []
        let sgemmBefore = sgemmGFLOPs(n: sgemmSize)
        let m0 = mallocCounters()
        for _ in 0..<steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let record = try trainer.step(stream)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            let p = trainer.lastPhases
            fwd.append(p.forward)
            bwd.append(p.backward)
            opt.append(p.optimizer)
            losses.append(record.loss)
        }
        let m1 = mallocCounters()
        let sgemmAfter = sgemmGFLOPs(n: sgemmSize)
        // The machine is shared: the sgemm rate is taken before and after the steps (median of the
        // two medians; the best of both for the best-case fraction).
        let sgemm = (sgemmBefore.median + sgemmAfter.median) / 2
        let sgemmBest = max(sgemmBefore.best, sgemmAfter.best)
        let flops = stepFLOPs(
            vision: modelConfig.vision, connector: connector.config, language: modelConfig.languageModel,
            batch: file.batch, imageTokens: imageTokens, textTokens: file.textTokens)
        let step = median(times)
        let tokens = file.batch * (imageTokens + file.textTokens)
        let achieved = flops.total / step * 1e-9
        let trainable = model.trainableParameters().reduce(0) { $0 + $1.1.value.shape.reduce(1, *) }
        let r: [String: Any] = [
            "framework": "sightline", "mode": "sightline", "config": file.name, "connector": connector.name,
            "connector_label": connector.label, "image_tokens": imageTokens, "text_tokens": file.textTokens,
            "batch": file.batch, "tokens_per_step": tokens, "trainable_parameters": trainable,
            "steps": steps, "warmup": warmup,
            "step_s": step, "step_s_all": times, "forward_s": median(fwd), "backward_s": median(bwd),
            "optimizer_s": median(opt), "tokens_per_s": Double(tokens) / step,
            "flops_per_step": flops.total,
            "flops_parts": [
                "vision_forward": flops.vision, "connector_forward": flops.connector,
                "decoder_forward": flops.decoder, "head_forward": flops.head,
            ],
            "achieved_gflops": achieved, "sgemm_gflops": sgemm, "fraction_of_sgemm": achieved / sgemm,
            "step_s_min": times.min()!, "sgemm_gflops_best": sgemmBest,
            "fraction_of_sgemm_best": flops.total / times.min()! * 1e-9 / sgemmBest,
            "peak_rss_mb": peakRSSMegabytes(),
            "mallocs_per_step": Double(m1.calls - m0.calls) / Double(steps),
            "malloc_bytes_per_step": Double(m1.bytes - m0.bytes) / Double(steps),
            "blas": blas.description, "threads": ComputeRuntime.threads, "losses": losses,
        ]
        print(
            String(
                format: "model  %@/%@: step %.4f s (fwd %.4f, bwd %.4f, opt %.4f), %.0f tokens/s, %.1f GFLOP/step, %.1f GFLOP/s = %.2f of sgemm %.1f, RSS %.0f MB, %.0f mallocs/step",
                file.name, connector.name, step, median(fwd), median(bwd), median(opt), Double(tokens) / step,
                flops.total * 1e-9, achieved, achieved / sgemm, sgemm, peakRSSMegabytes(),
                Double(m1.calls - m0.calls) / Double(steps)))
        fflush(stdout)
        results.append(r)
    }
    return results
}
