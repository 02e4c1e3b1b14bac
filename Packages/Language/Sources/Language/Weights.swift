import Foundation
import Layers

extension LlamaForCausalLM {
    /// The tensors of a HF checkpoint (`save_pretrained`'s names and shapes): every base parameter, with
    /// attached LoRA adapters merged in (as PEFT's `merge_and_unload`) and their own tensors left out;
    /// no `lm_head.weight` when embeddings are tied.
    public func huggingFaceStateDict() throws -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (name, m) in namedModules() where !(m is LoRAWeights.Half) {
            guard let lin = m as? LlamaLinear else {
                for (n, p) in m.localParameters { out.append((name.isEmpty ? n : name + "." + n, p.data)) }
                continue
            }
            var w = lin.weight.data
            if let lora = lin.lora, !lin.isMerged { try w.add(lora.delta()) }
            out.append((name + ".weight", w))
            if let b = lin.bias { out.append((name + ".bias", b.data)) }
        }
        // Module order: keep HF's (parameter registration) order.
        let order = Dictionary(
            uniqueKeysWithValues: namedParameters().enumerated().map { ($0.element.0, $0.offset) })
        return out.sorted { (order[$0.0] ?? 0) < (order[$1.0] ?? 0) }
    }
}
