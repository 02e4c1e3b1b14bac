import Foundation
import Layers

extension LlamaForCausalLM {
    /// The tensors of a HF checkpoint (`save_pretrained`'s names and shapes): every base parameter, with
    /// attached LoRA adapters merged in (as PEFT's `merge_and_unload`) and their own tensors left out;
    /// no `lm_head.weight` when embeddings are tied.
    public func huggingFaceStateDict() throws -> [(String, Tensor)] {
        try mergedStateDict()
    }
}
