#!/usr/bin/env python3
"""Writes the LLaVA-style projector fixture for the Bridges single-file loading test.

Tests/Fixtures/bridges/mm_projector.bin
    a `torch.save` state dict as a LLaVA pretraining run stores its projector (`mm_projector.bin`): an
    mlp2x_gelu projector (Linear 8 -> 6, GELU, Linear 6 -> 6) whose keys carry the prefix
    `model.mm_projector.` (`model.mm_projector.0.weight`, ..., `model.mm_projector.2.bias`).
Tests/Fixtures/bridges/mm_projector_reference.safetensors
    features_with_cls  [1, 5, 8]  vision features of a 2x2 patch grid with a leading class token
    out                [1, 4, 6]  the projector applied to the patch tokens (class token dropped),
                                  computed in float64 and rounded to float32

Run by hand with torch and safetensors installed: python3 scripts/make_projector_fixture.py
"""
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "bridges")


def main():
    torch.manual_seed(20240)
    projector = nn.Sequential(nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 6))
    state = {"model.mm_projector." + k: v.detach().clone() for k, v in projector.state_dict().items()}
    torch.save(state, os.path.join(OUT, "mm_projector.bin"))

    features = torch.randn(1, 5, 8, dtype=torch.float32)
    with torch.no_grad():
        out = projector.double()(features[:, 1:].double()).float()
    save_file(
        {"features_with_cls": features.contiguous(), "out": out.contiguous()},
        os.path.join(OUT, "mm_projector_reference.safetensors"),
        metadata={"torch": torch.__version__},
    )
    print("wrote mm_projector.bin and mm_projector_reference.safetensors with torch", torch.__version__)


if __name__ == "__main__":
    main()
