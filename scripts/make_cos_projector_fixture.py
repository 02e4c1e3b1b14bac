#!/usr/bin/env python3
"""Writes a Chain-of-Sight `mm_projector.bin` in the authors' layout, and a reference run of it.

The authors' LLaVA-based trainer saves the projector alone as a PyTorch pickle whose keys are the
projector's `state_dict` names under `model.mm_projector.`: `cls_token_w{ws}_q{nq}` per scale, then
per (level, scale) `attn_0_w{ws}_l{L}_q{nq}.{to_q, to_kv, proj, query_norm, cont_norm}`,
`mlp_0_w{ws}_l{L}_q{nq}.{fc1, fc2}`, `ln_0_w{ws}_l{L}_q{nq}`, then `ln_out`, `out_proj`; L is the
authors' 0-based block index (15 and 22 for ViT-L/14's hidden_states[16] and [23]).

This script writes that layout directly from the naming rule (random weights, float16 storage as a
half-precision training run saves them), then computes the reference output with
python/sightline_torch's ChainOfSight (float32, weights widened from float16), loading the stripped
names with strict=True.

Outputs (Tests/Fixtures/bridges/cos_mm_projector/):
  mm_projector.bin   the projector, keys `model.mm_projector.*`, float16
  reference.bin      `h16`, `h23` ([2, 64, 16] float32 feature levels) and `out` ([2, 20, 12])

Run by hand: python3 scripts/make_cos_projector_fixture.py  (versions go to Tests/Fixtures/VERSIONS.md)
"""

import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import sightline_torch as st  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "Fixtures", "bridges", "cos_mm_projector")
PREFIX = "model.mm_projector."

# A small projector: 8x8 patch grid, a global window with 4 queries and 2x2 windows with 1 query
# each (16 windows, 16 queries), width 16 (two heads of 8), output width 12, the released levels.
VISION, DIM, LLM, RATIO = 16, 16, 12, 4
GRID = 8
SCALES = [(8, 4), (2, 16)]
AUTHOR_LEVELS = [15, 22]


def authors_state_dict(g):
    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    sd = {}
    for ws, nq in SCALES:
        sd[f"cls_token_w{ws}_q{nq}"] = normal(1, nq, DIM, std=0.5)
    for level in AUTHOR_LEVELS:
        for ws, nq in SCALES:
            x = f"0_w{ws}_l{level}_q{nq}"
            sd[f"attn_{x}.to_q.weight"] = normal(DIM, DIM, std=DIM ** -0.5)
            sd[f"attn_{x}.to_kv.weight"] = normal(2 * DIM, VISION, std=VISION ** -0.5)
            sd[f"attn_{x}.proj.weight"] = normal(DIM, DIM, std=DIM ** -0.5)
            sd[f"attn_{x}.proj.bias"] = normal(DIM, std=0.1)
            sd[f"attn_{x}.query_norm.weight"] = 1 + normal(DIM, std=0.1)
            sd[f"attn_{x}.query_norm.bias"] = normal(DIM, std=0.1)
            sd[f"attn_{x}.cont_norm.weight"] = 1 + normal(VISION, std=0.1)
            sd[f"attn_{x}.cont_norm.bias"] = normal(VISION, std=0.1)
            sd[f"mlp_{x}.fc1.weight"] = normal(RATIO * DIM, DIM, std=DIM ** -0.5)
            sd[f"mlp_{x}.fc1.bias"] = normal(RATIO * DIM, std=0.1)
            sd[f"mlp_{x}.fc2.weight"] = normal(DIM, RATIO * DIM, std=(RATIO * DIM) ** -0.5)
            sd[f"mlp_{x}.fc2.bias"] = normal(DIM, std=0.1)
            sd[f"ln_{x}.weight"] = 1 + normal(DIM, std=0.1)
            sd[f"ln_{x}.bias"] = normal(DIM, std=0.1)
    sd["ln_out.weight"] = 1 + normal(DIM, std=0.1)
    sd["ln_out.bias"] = normal(DIM, std=0.1)
    sd["out_proj.weight"] = normal(LLM, DIM, std=DIM ** -0.5)
    sd["out_proj.bias"] = normal(LLM, std=0.1)
    return {k: v.half() for k, v in sd.items()}


def main():
    g = torch.Generator().manual_seed(2024)
    sd = authors_state_dict(g)
    os.makedirs(OUT, exist_ok=True)
    torch.save({PREFIX + k: v for k, v in sd.items()}, os.path.join(OUT, "mm_projector.bin"))

    config = {
        "type": "chain_of_sight", "visionDim": VISION, "dim": DIM, "llmDim": LLM, "headDim": 8,
        "mlpRatio": RATIO, "grid": {"height": GRID, "width": GRID},
        "scales": [{"windowSize": ws, "queries": nq} for ws, nq in SCALES],
        # Our featureLevels are HF hidden_states indices: the authors' block index + 1.
        "featureLevels": [level + 1 for level in AUTHOR_LEVELS],
    }
    module = st.build_connector(config)
    module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    h16 = torch.rand(2, GRID * GRID, VISION, generator=g) * 2 - 1
    h23 = torch.rand(2, GRID * GRID, VISION, generator=g) * 2 - 1
    with torch.no_grad():
        out = module([h16, h23])
    torch.save({"h16": h16, "h23": h23, "out": out}, os.path.join(OUT, "reference.bin"))
    print(f"wrote {len(sd)} tensors, output {list(out.shape)}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
