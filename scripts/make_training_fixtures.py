#!/usr/bin/env python3
"""Reference for Training's MultimodalModel: loss and every gradient on a packed batch.

The reference is HF `CLIPVisionModel` -> a two-layer MLP projection (`nn.Sequential(Linear, GELU,
Linear)`, the connector Bridges calls `projection` with depth 2, LLaVA-1.5's `mlp2x_gelu`) -> HF
`LlamaForCausalLM`, with random weights. The batch has two rows of 24 tokens: row 0 packs two
documents (the first with two images, the second of which has two sub-image crops; the second
document with one image), row 1 a text-only document and padding. Connector tokens replace the
placeholder runs in row-major order (HF Llava's `masked_scatter`); attention is causal within each
document (a 4-D additive mask); positions restart per document. The loss is
`(sum CE + 1e-4 * sum logsumexp^2) / supervised tokens` over next-token targets that never cross a
document.

Writes Tests/Fixtures/training/multimodal.json (configs, batch, loss) and
Tests/Fixtures/training/multimodal.safetensors (`param/<name>`, `grad/<name>`, `pixels`), with the
model's parameter names (`vision_tower.`, `multi_modal_projector.`, `language_model.`).

Run: python3 scripts/make_training_fixtures.py
"""
import json
import os
import platform

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "training")
IGNORE = -100
Z_LOSS = 1e-4
IMAGE_TOKEN = 1

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # references in float64, stored as float32

vision_cfg = dict(image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3)
llama_cfg = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                 max_position_embeddings=64, bos_token_id=2, eos_token_id=3, pad_token_id=0)
feature_layer = -2  # penultimate layer, HF hidden_states index
tokens_per_crop = 4  # 8/4 = 2x2 patches, one token per patch

vision = CLIPVisionModel(CLIPVisionConfig(**vision_cfg)).double()
projector = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32)).double()
llama = LlamaForCausalLM(LlamaConfig(**llama_cfg, attn_implementation="eager")).double()
for m in (vision, projector, llama):
    for p in m.parameters():
        with torch.no_grad():
            p.copy_(torch.randn_like(p) * 0.2)
# Norm weights near 1 so the reference is well conditioned.
with torch.no_grad():
    for name, p in list(vision.named_parameters()) + list(llama.named_parameters()):
        if "norm" in name and name.endswith("weight") or "layrnorm.weight" in name:
            p.copy_(1 + 0.1 * torch.randn_like(p))

T = 24
rows = []
# Row 0: document 0 = <s> [img0: 4] w w w [img1: 2 crops, 8] w ; document 1 = w w [img2: 4] w
def words(n, base):
    return [4 + (base + 7 * i) % 60 for i in range(n)]

doc0 = [2] + [IMAGE_TOKEN] * 4 + words(3, 1) + [IMAGE_TOKEN] * 8 + words(1, 9)
sup0 = [False] + [False] * 4 + [True] * 3 + [False] * 8 + [True] * 1
doc1 = words(2, 20) + [IMAGE_TOKEN] * 4 + words(1, 33)
sup1 = [True] * 2 + [False] * 4 + [True] * 1
assert len(doc0) + len(doc1) == 24, (len(doc0), len(doc1))
row0 = doc0 + doc1
lab0 = [t if s else IGNORE for t, s in zip(doc0, sup0)] + [t if s else IGNORE for t, s in zip(doc1, sup1)]
docs0 = [0] * len(doc0) + [1] * len(doc1)
pos0 = list(range(len(doc0))) + list(range(len(doc1)))
# Row 1: a text-only document of 17 tokens, then 7 padding tokens.
doc2 = [2] + words(16, 5)
row1 = doc2 + [0] * (T - len(doc2))
lab1 = [IGNORE] + doc2[1:] + [IGNORE] * (T - len(doc2))
docs1 = [0] * len(doc2) + [-1] * (T - len(doc2))
pos1 = list(range(len(doc2))) + list(range(T - len(doc2)))
assert len(row0) == T and len(row1) == T
tokens = torch.tensor([row0, row1])
labels = torch.tensor([lab0, lab1])
doc_ids = torch.tensor([docs0, docs1])
positions = torch.tensor([pos0, pos1])
placeholders = [
    dict(row=0, start=1, length=4, crops=1),
    dict(row=0, start=8, length=8, crops=2),
    dict(row=0, start=len(doc0) + 2, length=4, crops=1),
]
for p in placeholders:
    assert all(t == IMAGE_TOKEN for t in row0[p["start"]:p["start"] + p["length"]])
pixels = torch.randn(4, 3, 8, 8)

params = {}
for n, p in vision.named_parameters():
    # transformers 5 lists CLIPVisionModel's parameters without the `vision_model.` of its checkpoints.
    params["vision_tower." + (n if n.startswith("vision_model.") else "vision_model." + n)] = p
for n, p in projector.named_parameters():
    params["multi_modal_projector." + n] = p
for n, p in llama.named_parameters():
    params["language_model." + n] = p

# Forward.
hs = vision(pixel_values=pixels, output_hidden_states=True).hidden_states
feats = hs[feature_layer][:, 1:, :]  # [crops, 4, 16]
img_tokens = projector(feats).reshape(-1, 32)  # crops in order, 4 tokens each
emb = llama.model.embed_tokens(tokens)
mask = (tokens == IMAGE_TOKEN).unsqueeze(-1)
emb = emb.masked_scatter(mask, img_tokens)
B = tokens.shape[0]
allowed = torch.zeros(B, 1, T, T, dtype=torch.bool)
for b in range(B):
    for q in range(T):
        for k in range(q + 1):
            if doc_ids[b, q] == doc_ids[b, k]:
                allowed[b, 0, q, k] = True
add_mask = torch.zeros(B, 1, T, T)
add_mask[~allowed] = torch.finfo(torch.float64).min
out = llama(inputs_embeds=emb, attention_mask=add_mask, position_ids=positions)
logits = out.logits  # [B, T, V]
targets = torch.full((B, T), IGNORE)
for b in range(B):
    for i in range(T - 1):
        if doc_ids[b, i] == doc_ids[b, i + 1]:
            targets[b, i] = labels[b, i + 1]
sel = targets != IGNORE
lg = logits[sel]
tg = targets[sel]
count = int(sel.sum())
ce_sum = torch.nn.functional.cross_entropy(lg, tg, reduction="sum")
lse = torch.logsumexp(lg, dim=-1)
z_sum = Z_LOSS * (lse ** 2).sum()
loss = (ce_sum + z_sum) / count
loss.backward()

os.makedirs(OUT, exist_ok=True)
tensors = {"pixels": pixels.float().contiguous()}
no_grad = []
for n, p in params.items():
    tensors["param/" + n] = p.detach().float().contiguous()
    if p.grad is None:  # layers after the feature level and post_layernorm do not run
        no_grad.append(n)
    else:
        tensors["grad/" + n] = p.grad.detach().float().contiguous()
save_file(tensors, os.path.join(OUT, "multimodal.safetensors"))
meta = dict(
    vision=vision_cfg, language_model=llama_cfg,
    connector=dict(type="projection", visionDim=16, llmDim=32, depth=2, featureLevel=feature_layer),
    image_token_id=IMAGE_TOKEN, z_loss=Z_LOSS,
    tokens=tokens.tolist(), labels=labels.tolist(), document_ids=doc_ids.tolist(), position_ids=positions.tolist(),
    placeholders=placeholders, no_gradient=no_grad,
    loss=float(loss), ce_sum=float(ce_sum), z_sum=float(z_sum), count=count,
    versions=dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                  numpy=np.__version__),
)
with open(os.path.join(OUT, "multimodal.json"), "w") as f:
    json.dump(meta, f, indent=1)
print(f"loss {float(loss):.6f} over {count} tokens; {len(params)} parameters")
