#!/usr/bin/env python3
"""Reference for the clip stage's two-tower model: HF `CLIPModel` (text tower, vision tower,
projections, `logit_scale`) and its symmetric InfoNCE loss, with every gradient.

A small `CLIPModel` with random weights in float64: a 2-layer causal text tower over a vocabulary of
40 (pad 0, bos 2, eos 3; HF pools at each row's first end-of-text token when eos_token_id is not 2),
a 2-layer vision tower on 8x8 images with 4x4 patches, projections to 12. The batch holds 4 pairs; the
captions have different lengths, padded after their end-of-text token (no attention mask: attention
is causal, so the pooled token never sees the padding). `logit_scale` starts at ln(1/0.07).

Writes Tests/Fixtures/training/clip.json (configs, ids, loss, pooled outputs) and
Tests/Fixtures/training/clip.safetensors (`param/<name>`, `grad/<name>`, `pixels`,
`text_embeds`, `image_embeds`), with HF `CLIPModel`'s parameter names.

Run: python3 scripts/make_clip_fixtures.py
"""
import json
import math
import os
import platform

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "training")

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # references in float64, stored as float32

text_cfg = dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=10, hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=3,
                pad_token_id=0, bos_token_id=2)
vision_cfg = dict(image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3)
projection_dim = 12
logit_scale_init = math.log(1 / 0.07)

config = CLIPConfig(text_config=text_cfg, vision_config=vision_cfg, projection_dim=projection_dim,
                    logit_scale_init_value=logit_scale_init, attn_implementation="eager")
model = CLIPModel(config).double()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name == "logit_scale":
            continue
        if ("norm" in name or "layrnorm" in name) and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        else:
            p.copy_(torch.randn_like(p) * 0.2)

rows = [[2, 7, 8, 9, 3], [2, 11, 3], [2, 12, 13, 14, 15, 16, 3], [2, 17, 18, 3]]
T = max(len(r) for r in rows)
ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
pixels = torch.randn(len(rows), 3, 8, 8)

out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
loss = out.loss
loss.backward()
with torch.no_grad():  # projected, not normalised (what the Swift model's `textEmbeddings` returns)
    text_embeds = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    image_embeds = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    # The loss from these embeddings, as CLIP defines it, checks the pooling and projections above.
    ti = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    ii = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    logits = model.logit_scale.exp() * ti @ ii.t()
    target = torch.arange(len(rows))
    again = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.t(), target)) / 2
    assert abs(float(again) - float(loss)) < 1e-12, (float(again), float(loss))

os.makedirs(OUT, exist_ok=True)
tensors = {
    "pixels": pixels.float().contiguous(),
    "text_embeds": text_embeds.detach().float().contiguous(),
    "image_embeds": image_embeds.detach().float().contiguous(),
}
names = []
for n, p in model.named_parameters():
    names.append(n)
    tensors["param/" + n] = p.detach().float().contiguous().reshape(p.shape)
    if p.grad is not None:
        tensors["grad/" + n] = p.grad.detach().float().contiguous().reshape(p.shape)
save_file(tensors, os.path.join(OUT, "clip.safetensors"))
meta = dict(
    text=text_cfg, vision=vision_cfg, projection_dim=projection_dim, logit_scale_init=logit_scale_init,
    ids=ids.tolist(), loss=float(loss), parameters=names,
    versions=dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                  numpy=np.__version__),
)
with open(os.path.join(OUT, "clip.json"), "w") as f:
    json.dump(meta, f, indent=1)
print(f"loss {float(loss):.6f}; {len(names)} parameters")
