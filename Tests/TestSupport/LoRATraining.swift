import Layers
import Tensor

/// What `trainAdaptersOnly` saw: the loss before each step and the names of the parameters whose
/// values changed.
public struct AdapterTraining {
    /// Loss before each step (`losses[0]` is the untrained model's).
    public var losses: [Float]
    /// Parameters whose values differ bit for bit from before training.
    public var changed: Set<String>
    /// Parameters that did not change.
    public var unchanged: Set<String>
}

/// Runs `steps` plain gradient-descent steps on `model.trainableParameters()` (with LoRA attached:
/// the adapters only) and compares every parameter of the tree, bit for bit, with its value before.
/// - Parameters:
///   - learningRate: the step size.
///   - loss: the scalar to minimise, recomputed each step.
public func trainAdaptersOnly(
    _ model: Module, steps: Int, learningRate: Float, loss: () throws -> Tensor
) throws -> AdapterTraining {
    let before = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.data.scalars) })
    var losses: [Float] = []
    for _ in 0..<steps {
        let params = model.trainableParameters()
        let (value, grads) = try valueAndGradient(at: params, loss)
        losses.append(try value.item())
        for (name, p) in params {
            guard let g = grads[name] else { continue }
            try p.update { try $0.add(g, scaledBy: -learningRate) }
        }
    }
    var changed = Set<String>(), unchanged = Set<String>()
    for (name, p) in model.namedParameters() {
        if p.data.scalars == before[name] { unchanged.insert(name) } else { changed.insert(name) }
    }
    return AdapterTraining(losses: losses, changed: changed, unchanged: unchanged)
}

/// Whether a dotted parameter name belongs to a LoRA adapter (`...lora_A.weight`, `...lora_B.weight`).
public func isAdapterParameter(_ name: String) -> Bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

/// Replaces every parameter of `m` by O(1) random values (norm weights near 1, biases near 0, Linear
/// and conv weights scaled by 1/sqrt(fan-in)), so that a comparison is not dominated by a 0.02-scale
/// initialisation.
public func randomizeParameters(_ m: Module, seed: UInt64) {
    var g = RandomGenerator(seed: seed)
    for (name, p) in m.namedParameters() {
        let z = Tensor.normal(p.shape, mean: 0, std: 1, generator: &g)
        if p.shape.count == 1 && name.hasSuffix("weight") {
            p.data = z * 0.1 + 1
        } else if name.hasSuffix("bias") {
            p.data = z * 0.1
        } else if p.shape.count >= 2 && !name.hasPrefix("cls_token") && name != "query" && name != "pos_emb" {
            let fanIn = p.shape.dropFirst().reduce(1, *)
            p.data = z * (1 / Float(fanIn).squareRoot())
        } else {
            p.data = z * 0.5
        }
    }
}
