#!/usr/bin/env python3
"""Writes PyTorch reference trajectories for the Optim package (Tests/Fixtures/optim/<name>.json).

Same file layout as scripts/make_fixtures.py. Each case runs 50 steps in float32 with PyTorch's own
optimizer (foreach=False, the single-tensor path), gradient clipping by global norm
(`clip_grad_norm_`, max 1.0) and an explicit cosine-with-warm-up multiplier set on every group before
each step. Stored: the initial parameters, the gradient of every step (`grads_<param>`, [50, ...]),
and the parameters after every step (`traj_<param>`, [50, ...]); params give the hyper-parameters.

Cases:
- adamw_pytorch: torch.optim.AdamW, weight decay 0.1 on the matrix, 0 on the bias (two groups).
- adamw_decoupled: the fully decoupled form p -= s_t (lr m_hat / (sqrt(v_hat) + eps) + wd p), which equals
  torch.optim.AdamW with weight_decay = wd / lr (PyTorch multiplies decay by lr_t = lr s_t).
- sgd_momentum: torch.optim.SGD, momentum 0.9, weight decay 1e-3.
- adamw_decay_all_groups: torch.optim.AdamW decaying every parameter, the bias included (PyTorch's
  default), with the bias in a second group at half the learning rate (a group multiplier of 0.5).

Run by hand: python3 scripts/make_optim_fixtures.py [case ...] (needs torch and numpy). With case names,
only those cases are written and their versions are appended to VERSIONS.md (the other fixtures are
left exactly as they are).
"""

import json
import math
import os

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "Fixtures", "optim")
STEPS, WARMUP, FLOOR = 50, 5, 0.1


def multiplier(t):
    if t < WARMUP:
        return (t + 1) / WARMUP
    return FLOOR + (1 - FLOOR) * (1 + math.cos(math.pi * (t - WARMUP) / (STEPS - WARMUP))) / 2


def enc(t):
    a = t.detach().to(torch.float32).numpy()
    return {"shape": list(a.shape), "data": [float(x) for x in a.reshape(-1)]}


def run_case(name, make_opt, params_doc):
    g = torch.Generator().manual_seed(1234)
    w = torch.randn(4, 3, generator=g).requires_grad_()
    b = torch.randn(4, generator=g).requires_grad_()
    init = {"w": w.detach().clone(), "b": b.detach().clone()}
    opt, base_lrs = make_opt(w, b)
    grads = {"w": [], "b": []}
    traj = {"w": [], "b": []}
    norms = []
    for step in range(STEPS):
        # Large gradients every third step so that clipping is exercised.
        scale = 5.0 if step % 3 == 0 else 0.3
        w.grad = torch.randn(4, 3, generator=g) * scale
        b.grad = torch.randn(4, generator=g) * scale
        grads["w"].append(w.grad.clone())
        grads["b"].append(b.grad.clone())
        norm = torch.nn.utils.clip_grad_norm_([w, b], max_norm=1.0, foreach=False)
        norms.append(float(norm))
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * multiplier(step)
        opt.step()
        traj["w"].append(w.detach().clone())
        traj["b"].append(b.detach().clone())
    tensors = {
        "init_w": enc(init["w"]), "init_b": enc(init["b"]),
        "grads_w": enc(torch.stack(grads["w"])), "grads_b": enc(torch.stack(grads["b"])),
        "traj_w": enc(torch.stack(traj["w"])), "traj_b": enc(torch.stack(traj["b"])),
        "norms": enc(torch.tensor(norms)),
    }
    doc = {"name": name, "op": "optimizer", "params": dict(params_doc, steps=STEPS, warmup=WARMUP, floor=FLOOR, max_norm=1.0),
           "ints": {}, "tensors": tensors, "notes": {}}
    with open(os.path.join(OUT_DIR, name + ".json"), "w") as f:
        f.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")


def main(only):
    os.makedirs(OUT_DIR, exist_ok=True)
    lr, wd = 1e-2, 0.1

    def run(name, *args):
        if not only or name in only:
            run_case(name, *args)

    run("adamw_pytorch",
        lambda w, b: (torch.optim.AdamW([{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}],
                                        lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False), [lr, lr]),
        {"lr": lr, "weight_decay": wd, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "semantics": "pytorch"})
    # Moderate decay (heavy decay shrinks the parameters and magnifies relative rounding noise).
    # Powers of two, so that PyTorch's lr_t * (wd / lr) equals s_t * wd exactly in float arithmetic.
    dlr, dwd = 2.0 ** -7, 2.0 ** -6
    run("adamw_decoupled",
        lambda w, b: (torch.optim.AdamW([{"params": [w], "weight_decay": dwd / dlr}, {"params": [b], "weight_decay": 0.0}],
                                        lr=dlr, betas=(0.9, 0.999), eps=1e-8, foreach=False), [dlr, dlr]),
        {"lr": dlr, "weight_decay": dwd, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "semantics": "decoupled"})
    run("sgd_momentum",
        lambda w, b: (torch.optim.SGD([w, b], lr=0.05, momentum=0.9, weight_decay=1e-3, foreach=False), [0.05, 0.05]),
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3})
    run("adamw_decay_all_groups",
        lambda w, b: (torch.optim.AdamW([{"params": [w]}, {"params": [b]}], lr=lr, weight_decay=wd,
                                        betas=(0.9, 0.999), eps=1e-8, foreach=False), [lr, lr * 0.5]),
        {"lr": lr, "weight_decay": wd, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "semantics": "pytorch",
         "bias_lr_multiplier": 0.5})
    versions = f"torch {torch.__version__}, numpy {np.__version__}"
    if only:
        with open(os.path.join(OUT_DIR, "VERSIONS.md"), "a") as f:
            f.write(f"{', '.join(sorted(only))}: generated by scripts/make_optim_fixtures.py with {versions}.\n")
    else:
        with open(os.path.join(OUT_DIR, "VERSIONS.md"), "w") as f:
            f.write(f"Generated by scripts/make_optim_fixtures.py with {versions}.\n")


if __name__ == "__main__":
    import sys
    main(set(sys.argv[1:]))
