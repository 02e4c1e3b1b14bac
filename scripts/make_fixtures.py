#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for the Tensor package's parity tests.

Every case is one JSON file in Tests/Fixtures/tensor/<name>.json:

    {
      "name": "conv2d_groups2", "op": "conv2d",
      "params":  {"stride": [1, 1], "groups": 2, ...},       # the op's arguments
      "ints":    {"targets": {"shape": [8], "data": [...]}}, # integer arrays (targets, lengths)
      "tensors": {"x": {"shape": [2, 4, 7, 9], "data": [...]}, "out": {...}, "r": {...},
                  "grad_x": {...}, ...},
      "notes":   {"torch_float32_rel_err": {"out": 3.1e-08, ...}}
    }

Inputs are drawn as float32 (so they are exact in both precisions). The stored outputs and gradients
are computed by PyTorch in float64 from those inputs and then rounded to float32 precision, so the
reference carries no float32 accumulation noise of its own. `notes.torch_float32_rel_err` records how
far PyTorch's own float32 computation lands from that reference (max|f32 - ref| / max|ref| per
tensor): the floor any float32 implementation can be expected to reach.

Gradients: for an op with output `out`, a random tensor `r` of the same shape is stored and
`grad_<input>` holds d(sum(out * r))/d(input). For scalar losses the gradient of the loss itself is
stored.

Run once by hand (see scripts/README.md); the outputs are committed. Deterministic: every case seeds
its own generator from a CRC of its name.
"""

import json
import os
import platform
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "Fixtures", "tensor")
VERSIONS = os.path.join(ROOT, "Tests", "Fixtures", "VERSIONS.md")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


def rounded(v):
    """A float rounded to float32 precision (9 significant digits round-trip a float32)."""
    v = float(np.float32(v))
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("non-finite value in a fixture")
    return float("%.9g" % v)


def tensor_json(t):
    t = t.detach().to(torch.float64).contiguous()
    return {"shape": list(t.shape), "data": [rounded(v) for v in t.reshape(-1).tolist()]}


def ints_json(t):
    t = torch.as_tensor(t).to(torch.int64).contiguous()
    return {"shape": list(t.shape), "data": [int(v) for v in t.reshape(-1).tolist()]}


def rel_err(a, ref):
    a = a.detach().to(torch.float64)
    ref = ref.detach().to(torch.float64)
    den = ref.abs().max().item() if ref.numel() else 0.0
    num = (a - ref).abs().max().item() if ref.numel() else 0.0
    return num / den if den > 0 else num


class Case:
    def __init__(self, name, op):
        self.name = name
        self.op = op
        self.gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        self.params = {}
        self.ints = {}
        self.tensors = {}
        self.notes = {}

    def uniform(self, *shape, low=-1.0, high=1.0):
        u = torch.rand(*shape, generator=self.gen, dtype=torch.float32)
        return (u * (high - low) + low).to(torch.float32)

    def normal(self, *shape, std=1.0):
        return (torch.randn(*shape, generator=self.gen, dtype=torch.float32) * std).to(torch.float32)


CASES = []


def run_case(case, inputs, fn, grad_inputs=(), scalar_outputs=False):
    """Evaluates `fn(**inputs)` in float64 (stored) and float32 (noise note).

    `fn` returns a dict of named output tensors. For `grad_inputs`, gradients of sum(out * r) (or of
    the scalar `out` when `scalar_outputs`) are stored as grad_<name>.
    """
    for k, v in inputs.items():
        case.tensors[k] = tensor_json(v)

    def evaluate(dtype):
        xs = {k: v.detach().to(dtype).requires_grad_(k in grad_inputs) for k, v in inputs.items()}
        outs = fn(**xs)
        return xs, outs

    xs64, outs64 = evaluate(torch.float64)
    xs32, outs32 = evaluate(torch.float32)
    noise = {}
    for k in outs64:
        case.tensors[k] = tensor_json(outs64[k])
        noise[k] = rel_err(outs32[k], outs64[k])
    if grad_inputs:
        out64 = outs64["out"]
        out32 = outs32["out"]
        if scalar_outputs:
            l64, l32 = out64, out32
        else:
            r = case.uniform(*out64.shape)
            case.tensors["r"] = tensor_json(r)
            l64 = (out64 * r.to(torch.float64)).sum()
            l32 = (out32 * r).sum()
        names = list(grad_inputs)
        g64 = torch.autograd.grad(l64, [xs64[n] for n in names])
        g32 = torch.autograd.grad(l32, [xs32[n] for n in names])
        for n, a, b in zip(names, g64, g32):
            case.tensors["grad_" + n] = tensor_json(a)
            noise["grad_" + n] = rel_err(b, a)
    case.notes["torch_float32_rel_err"] = noise
    CASES.append(case)


# --------------------------------------------------------------------------------------------------
# conv2d


def conv_cases():
    specs = [
        # name, x shape, weight shape, stride, padding, dilation, groups, bias
        ("groups1", (2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), 1, True),
        ("groups2", (2, 4, 7, 9), (6, 2, 3, 3), (1, 1), (0, 0), (1, 1), 2, True),
        ("depthwise", (1, 4, 7, 9), (8, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4, True),
        ("stride2", (2, 3, 7, 9), (4, 3, 3, 3), (2, 2), (0, 0), (1, 1), 1, True),
        ("padding1", (2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),
        ("dilation2", (2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (2, 2), (2, 2), 1, True),
        ("nobias", (2, 3, 7, 9), (5, 3, 2, 3), (1, 1), (0, 1), (1, 1), 1, False),
        ("mixed", (2, 4, 8, 9), (6, 2, 3, 5), (2, 1), (1, 2), (1, 2), 2, True),
        ("patch4", (2, 3, 8, 12), (5, 3, 4, 4), (4, 4), (0, 0), (1, 1), 1, True),
    ]
    for name, xs, ws, stride, padding, dilation, groups, has_bias in specs:
        c = Case("conv2d_" + name, "conv2d")
        c.params = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation),
                    "groups": groups, "bias": has_bias}
        fan_in = ws[1] * ws[2] * ws[3]
        inputs = {"x": c.uniform(*xs), "weight": c.uniform(*ws) / fan_in ** 0.5}
        if has_bias:
            inputs["bias"] = c.uniform(ws[0])

        def fn(x, weight, bias=None, stride=stride, padding=padding, dilation=dilation, groups=groups):
            return {"out": F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups)}

        run_case(c, inputs, fn, grad_inputs=tuple(inputs.keys()))


# --------------------------------------------------------------------------------------------------
# interpolate


def interpolate_cases():
    specs = [
        # name, x shape, size, scale_factor, mode, align_corners, antialias
        ("bicubic_up", (2, 2, 6, 8), (9, 11), None, "bicubic", False, False),
        ("bicubic_nonsquare", (2, 2, 6, 8), (9, 5), None, "bicubic", False, False),
        ("bicubic_ac", (2, 2, 6, 8), (9, 5), None, "bicubic", True, False),
        ("bicubic_ac_down", (2, 2, 9, 11), (4, 6), None, "bicubic", True, False),
        ("bicubic_down", (2, 2, 9, 11), (4, 6), None, "bicubic", False, False),
        ("bicubic_aa_down", (2, 2, 12, 10), (5, 4), None, "bicubic", False, True),
        ("bicubic_aa_up", (2, 2, 6, 8), (9, 11), None, "bicubic", False, True),
        ("bicubic_aa_mixed", (2, 2, 6, 8), (9, 5), None, "bicubic", False, True),
        ("bicubic_scale", (2, 2, 7, 9), None, (1.7, 1.3), "bicubic", False, False),
        ("bicubic_aa_scale", (2, 2, 12, 10), None, (0.45, 0.6), "bicubic", False, True),
        ("bilinear_up", (2, 2, 6, 8), (9, 11), None, "bilinear", False, False),
        ("bilinear_nonsquare", (2, 2, 6, 8), (9, 5), None, "bilinear", False, False),
        ("bilinear_ac", (2, 2, 6, 8), (9, 5), None, "bilinear", True, False),
        ("bilinear_down", (2, 2, 9, 11), (4, 6), None, "bilinear", False, False),
        ("bilinear_aa_down", (2, 2, 12, 10), (5, 4), None, "bilinear", False, True),
        ("bilinear_aa_mixed", (2, 2, 6, 8), (9, 5), None, "bilinear", False, True),
        ("bilinear_scale", (2, 2, 7, 9), None, (1.7, 0.6), "bilinear", False, False),
        ("bilinear_ac_scale", (2, 2, 7, 9), None, (2.0, 0.5), "bilinear", True, False),
        ("bilinear_aa_scale", (2, 2, 12, 10), None, (0.45, 0.6), "bilinear", False, True),
        ("nearest_size", (2, 2, 6, 8), (9, 5), None, "nearest", None, False),
        ("nearest_scale", (2, 2, 7, 9), None, (1.7, 0.6), "nearest", None, False),
        # Position-embedding resampling (ViT grids): 16x16 -> 24x24 and 24x24 -> 32x24.
        ("posembed_16_24", (1, 1, 16, 16), (24, 24), None, "bicubic", False, False),
        ("posembed_16_24_aa", (1, 1, 16, 16), (24, 24), None, "bicubic", False, True),
        ("posembed_24_32x24", (1, 1, 24, 24), (32, 24), None, "bicubic", False, False),
        ("posembed_24_32x24_aa", (1, 1, 24, 24), (32, 24), None, "bicubic", False, True),
        ("posembed_24_16_aa", (1, 1, 24, 24), (16, 16), None, "bicubic", False, True),
    ]
    for name, xs, size, scale, mode, ac, aa in specs:
        c = Case("interpolate_" + name, "interpolate")
        c.params = {"size": list(size) if size else None, "scale_factor": list(scale) if scale else None,
                    "mode": mode, "align_corners": bool(ac) if ac is not None else False, "antialias": aa}

        def fn(x, size=size, scale=scale, mode=mode, ac=ac, aa=aa):
            kw = {"mode": mode, "antialias": aa}
            if mode != "nearest":
                kw["align_corners"] = ac
            if size is not None:
                kw["size"] = size
            else:
                kw["scale_factor"] = scale
            return {"out": F.interpolate(x, **kw)}

        run_case(c, {"x": c.uniform(*xs)}, fn, grad_inputs=("x",))


# --------------------------------------------------------------------------------------------------
# pooling


def pool_cases():
    for name, xs, out in [("16_8", (1, 2, 16, 16), (8, 8)), ("16_12", (1, 2, 16, 16), (12, 12)),
                          ("27_12", (1, 1, 27, 27), (12, 12)), ("5x7_3x2", (2, 3, 5, 7), (3, 2))]:
        c = Case("adaptive_avg_pool2d_" + name, "adaptive_avg_pool2d")
        c.params = {"output_size": list(out)}
        run_case(c, {"x": c.uniform(*xs)}, lambda x, out=out: {"out": F.adaptive_avg_pool2d(x, out)},
                 grad_inputs=("x",))

    avg = [
        # name, x shape, kernel, stride, padding, ceil_mode, count_include_pad
        ("k2s2", (2, 2, 8, 10), (2, 2), (2, 2), (0, 0), False, True),
        ("k3s2p1", (2, 2, 7, 9), (3, 3), (2, 2), (1, 1), False, True),
        ("k3s2p1_exclude", (2, 2, 7, 9), (3, 3), (2, 2), (1, 1), False, False),
        ("k3s2p1_ceil", (2, 2, 8, 10), (3, 3), (2, 2), (1, 1), True, True),
        ("k3s2p1_ceil_exclude", (2, 2, 8, 10), (3, 3), (2, 2), (1, 1), True, False),
        ("k3s2_ceil", (2, 2, 7, 10), (3, 3), (2, 2), (0, 0), True, True),
        ("k2x3s1x2p1x0", (2, 2, 7, 9), (2, 3), (1, 2), (1, 0), False, True),
    ]
    for name, xs, k, s, p, ceil, cip in avg:
        c = Case("avg_pool2d_" + name, "avg_pool2d")
        c.params = {"kernel": list(k), "stride": list(s), "padding": list(p), "ceil_mode": ceil,
                    "count_include_pad": cip}

        def fn(x, k=k, s=s, p=p, ceil=ceil, cip=cip):
            return {"out": F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)}

        run_case(c, {"x": c.uniform(*xs)}, fn, grad_inputs=("x",))

    mx = [
        # name, x shape, kernel, stride, padding, dilation, ceil_mode
        ("k2s2", (2, 2, 8, 10), (2, 2), (2, 2), (0, 0), (1, 1), False),
        ("k3s2p1", (2, 2, 7, 9), (3, 3), (2, 2), (1, 1), (1, 1), False),
        ("k3s2p1_ceil", (2, 2, 8, 10), (3, 3), (2, 2), (1, 1), (1, 1), True),
        ("k3s2_ceil", (2, 2, 7, 10), (3, 3), (2, 2), (0, 0), (1, 1), True),
        ("k3s1d2p1", (2, 2, 7, 9), (3, 3), (1, 1), (1, 1), (2, 2), False),
        ("k2x3s2x1p1x1", (2, 2, 7, 9), (2, 3), (2, 1), (1, 1), (1, 1), True),
    ]
    for name, xs, k, s, p, d, ceil in mx:
        c = Case("max_pool2d_" + name, "max_pool2d")
        c.params = {"kernel": list(k), "stride": list(s), "padding": list(p), "dilation": list(d),
                    "ceil_mode": ceil}

        def fn(x, k=k, s=s, p=p, d=d, ceil=ceil):
            return {"out": F.max_pool2d(x, k, s, p, dilation=d, ceil_mode=ceil)}

        # A random permutation of distinct values: no ties, so the argmax (and gradient) is unique.
        n = int(np.prod(xs))
        x = (torch.randperm(n, generator=c.gen).to(torch.float32) / n * 2 - 1).reshape(xs)
        run_case(c, {"x": x}, fn, grad_inputs=("x",))


# --------------------------------------------------------------------------------------------------
# normalisation


def norm_cases():
    for name, xs, groups, affine in [("g3", (2, 6, 5, 7), 3, True), ("g1", (2, 6, 5, 7), 1, True),
                                     ("g6", (2, 6, 5, 7), 6, True), ("g2_noaffine", (3, 4, 3, 5), 2, False)]:
        c = Case("group_norm_" + name, "group_norm")
        c.params = {"groups": groups, "eps": 1e-5, "affine": affine}
        inputs = {"x": c.uniform(*xs) * 2 + 0.5}
        if affine:
            inputs["weight"] = c.uniform(xs[1], low=0.5, high=1.5)
            inputs["bias"] = c.uniform(xs[1])

        def fn(x, weight=None, bias=None, groups=groups):
            return {"out": F.group_norm(x, groups, weight, bias, eps=1e-5)}

        run_case(c, inputs, fn, grad_inputs=tuple(inputs.keys()))

    for name, xs, ns, offset, affine in [("last", (2, 5, 16), (16,), 0.0, True),
                                          ("last2", (2, 5, 16), (5, 16), 0.0, True),
                                          ("offset", (3, 24), (24,), 3.0, True),
                                          ("noaffine", (2, 5, 16), (16,), 0.0, False)]:
        c = Case("layer_norm_" + name, "layer_norm")
        c.params = {"normalized_shape": list(ns), "eps": 1e-5, "affine": affine}
        inputs = {"x": c.uniform(*xs) + offset}
        if affine:
            inputs["weight"] = c.uniform(*ns, low=0.5, high=1.5)
            inputs["bias"] = c.uniform(*ns)

        def fn(x, weight=None, bias=None, ns=ns):
            return {"out": F.layer_norm(x, ns, weight, bias, eps=1e-5)}

        run_case(c, inputs, fn, grad_inputs=tuple(inputs.keys()))

    for name, xs, eps in [("eps1e-6", (2, 5, 16), 1e-6), ("eps1e-5", (3, 32), 1e-5)]:
        c = Case("rms_norm_" + name, "rms_norm")
        c.params = {"eps": eps}
        inputs = {"x": c.uniform(*xs) * 2, "weight": c.uniform(xs[-1], low=0.5, high=1.5)}

        def fn(x, weight, eps=eps):
            # As Hugging Face's LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then scaled by weight.
            variance = x.pow(2).mean(-1, keepdim=True)
            return {"out": weight * (x * torch.rsqrt(variance + eps))}

        run_case(c, inputs, fn, grad_inputs=("x", "weight"))

    for training in (True, False):
        name = "train" if training else "eval"
        c = Case("batch_norm_" + name, "batch_norm")
        c.params = {"training": training, "momentum": 0.1, "eps": 1e-5}
        xs = (4, 3, 5, 6)
        inputs = {"x": c.uniform(*xs) * 2 + 0.3, "weight": c.uniform(3, low=0.5, high=1.5),
                  "bias": c.uniform(3), "running_mean": c.uniform(3, low=-0.2, high=0.2),
                  "running_var": c.uniform(3, low=0.5, high=1.5)}

        def fn(x, weight, bias, running_mean, running_var, training=training):
            rm = running_mean.detach().clone()
            rv = running_var.detach().clone()
            out = F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=0.1, eps=1e-5)
            return {"out": out, "running_mean_out": rm, "running_var_out": rv}

        run_case(c, inputs, fn, grad_inputs=("x", "weight", "bias"))


# --------------------------------------------------------------------------------------------------
# attention


def attention_cases():
    def doc_mask(lengths):
        L = sum(lengths)
        doc = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
        return doc[:, None] == doc[None, :], L

    specs = []
    B, H, L, D = 2, 2, 6, 8
    specs.append(("nomask", B, H, H, L, L, D, None, None, {}))
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    specs.append(("causal", B, H, H, L, L, D, causal, None, {}))
    dm, Ld = doc_mask([3, 4])
    specs.append(("document", B, H, H, Ld, Ld, D, dm, None, {"document_lengths": [3, 4]}))
    dmc = dm & torch.ones(Ld, Ld, dtype=torch.bool).tril()
    specs.append(("document_causal", B, H, H, Ld, Ld, D, dmc, None, {"document_lengths": [3, 4]}))
    specs.append(("gqa", B, 4, 2, L, L, D, None, None, {}))
    specs.append(("gqa_causal", B, 4, 1, L, L, D, causal, None, {}))
    valid = [6, 4]
    kp = torch.zeros(B, 1, 1, L, dtype=torch.bool)
    for b, n in enumerate(valid):
        kp[b, ..., :n] = True
    specs.append(("key_padding", B, H, H, L, L, D, kp, None, {"key_lengths": valid}))
    specs.append(("cross", B, H, H, 5, 7, D, None, None, {}))
    specs.append(("scale", B, H, H, L, L, D, causal, 0.3, {}))
    # Fewer queries than keys (a KV cache): query i sits at position Tk - Tq + i (bottom-right).
    tail = torch.ones(4, 7, dtype=torch.bool).tril(diagonal=7 - 4)
    specs.append(("causal_tail", B, H, H, 4, 7, D, tail, None, {}))

    for name, B, Hq, Hkv, Lq, Lk, D, mask, scale, extra in specs:
        c = Case("sdpa_" + name, "scaled_dot_product_attention")
        c.params = {"heads": Hq, "kv_heads": Hkv, "scale": scale,
                    "mask": "none" if mask is None else name}
        for k, v in extra.items():
            c.ints[k] = ints_json(torch.tensor(v))
        if mask is not None:
            # The boolean mask as given to torch (True = attend), broadcast to [B, 1, Lq, Lk].
            c.ints["attn_mask"] = ints_json(mask.expand(B, 1, Lq, Lk).to(torch.int64))
        inputs = {"q": c.uniform(B, Hq, Lq, D) * 1.5, "k": c.uniform(B, Hkv, Lk, D) * 1.5,
                  "v": c.uniform(B, Hkv, Lk, D)}

        def fn(q, k, v, mask=mask, scale=scale, rep=Hq // Hkv):
            if rep > 1:
                # Query head h reads key/value head h // rep (Hugging Face's repeat_kv).
                k = k.repeat_interleave(rep, dim=1)
                v = v.repeat_interleave(rep, dim=1)
            return {"out": F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)}

        run_case(c, inputs, fn, grad_inputs=("q", "k", "v"))


# --------------------------------------------------------------------------------------------------
# activations and softmax family


def activation_cases():
    def act_input(c):
        grid = torch.linspace(-8, 8, 41, dtype=torch.float32)
        return torch.cat([grid, c.uniform(47) * 3]).reshape(8, 11)

    acts = [
        ("gelu", {}, lambda x: F.gelu(x)),
        ("gelu_tanh", {}, lambda x: F.gelu(x, approximate="tanh")),
        ("quick_gelu", {}, lambda x: x * torch.sigmoid(1.702 * x)),
        ("silu", {}, lambda x: F.silu(x)),
        ("softplus", {"beta": 1.0, "threshold": 20.0}, lambda x: F.softplus(x)),
        ("softplus_beta2_t3", {"beta": 2.0, "threshold": 3.0}, lambda x: F.softplus(x, beta=2.0, threshold=3.0)),
    ]
    for name, params, f in acts:
        c = Case("act_" + name, name.split("_beta")[0])
        c.params = params
        run_case(c, {"x": act_input(c)}, lambda x, f=f: {"out": f(x)}, grad_inputs=("x",))

    for name, xs, axis, mult in [("last", (3, 5, 7), -1, 3.0), ("axis1", (3, 5, 7), 1, 3.0),
                                 ("large", (4, 33), -1, 40.0)]:
        for op, f in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
            c = Case(op + "_" + name, op)
            c.params = {"axis": axis}
            run_case(c, {"x": c.uniform(*xs) * mult}, lambda x, f=f, axis=axis: {"out": f(x, dim=axis)},
                     grad_inputs=("x",))

    for name, xs, axes, keep, mult in [("last", (3, 5, 7), [-1], False, 3.0),
                                       ("axes12_keep", (3, 5, 7), [1, 2], True, 3.0),
                                       ("large", (4, 33), [-1], False, 40.0)]:
        c = Case("logsumexp_" + name, "logsumexp")
        c.params = {"axes": axes, "keep_dim": keep}
        run_case(c, {"x": c.uniform(*xs) * mult},
                 lambda x, axes=axes, keep=keep: {"out": torch.logsumexp(x, dim=axes, keepdim=keep)},
                 grad_inputs=("x",))


# --------------------------------------------------------------------------------------------------
# cross entropy (+ z-loss)


def cross_entropy_cases():
    specs = [
        # name, rows, vocab, logit scale, ignored rows, label smoothing, z-loss coefficient
        ("plain", 8, 11, 3.0, [], 0.0, 0.0),
        ("ignore", 8, 11, 3.0, [1, 5], 0.0, 0.0),
        ("smoothing", 8, 11, 3.0, [], 0.1, 0.0),
        ("ignore_smoothing_zloss", 10, 13, 3.0, [0, 4, 9], 0.1, 1e-4),
        ("zloss_large", 6, 50, 20.0, [2], 0.0, 1e-3),
        ("batched", (2, 4), 9, 3.0, [(0, 3), (1, 0), (1, 1)], 0.1, 1e-4),
    ]
    for name, N, V, mult, ignored, ls, coef in specs:
        c = Case("cross_entropy_" + name, "cross_entropy")
        lead = N if isinstance(N, tuple) else (N,)
        targets = torch.randint(0, V, lead, generator=c.gen)
        for i in ignored:
            targets[i] = -100
        c.params = {"ignore_index": -100, "label_smoothing": ls, "z_loss_coefficient": coef}
        c.ints["targets"] = ints_json(targets)
        keep = targets != -100
        count = int(keep.sum())
        c.params["count"] = count
        logits = c.uniform(*lead, V) * mult

        def fn(logits, targets=targets, keep=keep, ls=ls, coef=coef):
            # Classes last (as the Swift op); torch wants them at dim 1, so rows are flattened.
            flat, tflat = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
            mean = F.cross_entropy(flat, tflat, ignore_index=-100, label_smoothing=ls, reduction="mean")
            total = F.cross_entropy(flat, tflat, ignore_index=-100, label_smoothing=ls, reduction="sum")
            lse = torch.logsumexp(logits, dim=-1)
            lse2 = (lse * lse)[keep]
            z_sum = lse2.sum()
            z_mean = coef * lse2.mean()
            return {"out": mean, "loss_sum": total, "z_loss": z_mean, "z_loss_sum_unscaled": z_sum,
                    "z_loss_sum": coef * z_sum, "total_mean": mean + z_mean, "lse": lse}

        run_case(c, {"logits": logits}, fn, grad_inputs=("logits",), scalar_outputs=True)
        # Also the gradient of the combined objective (mean loss + coef * mean lse^2).
        x = logits.to(torch.float64).requires_grad_(True)
        out = fn(x)
        (g,) = torch.autograd.grad(out["total_mean"], [x])
        c.tensors["grad_logits_total"] = tensor_json(g)


# --------------------------------------------------------------------------------------------------


def main():
    conv_cases()
    interpolate_cases()
    pool_cases()
    norm_cases()
    attention_cases()
    activation_cases()
    cross_entropy_cases()

    os.makedirs(OUT_DIR, exist_ok=True)
    for old in os.listdir(OUT_DIR):
        if old.endswith(".json"):
            os.remove(os.path.join(OUT_DIR, old))
    names = set()
    total = 0
    for c in CASES:
        assert c.name not in names, c.name
        names.add(c.name)
        doc = {"name": c.name, "op": c.op, "params": c.params, "ints": c.ints, "tensors": c.tensors,
               "notes": c.notes}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
        with open(os.path.join(OUT_DIR, c.name + ".json"), "w") as f:
            f.write(text)
        total += len(text)
    worst = max((v, c.name, k) for c in CASES for k, v in c.notes["torch_float32_rel_err"].items())
    print(f"wrote {len(CASES)} cases, {total / 1e6:.2f} MB, to {OUT_DIR}")
    print(f"worst PyTorch float32 vs float64 relative error: {worst[0]:.2e} ({worst[1]}.{worst[2]})")

    with open(VERSIONS, "w") as f:
        f.write("# Versions used to generate the fixtures\n\n")
        f.write("`Tests/Fixtures/tensor/*.json` were written by `scripts/make_fixtures.py` with:\n\n")
        f.write(f"- Python {platform.python_version()} ({platform.system()} {platform.machine()})\n")
        f.write(f"- torch {torch.__version__}\n")
        f.write(f"- numpy {np.__version__}\n\n")
        f.write("References are computed in float64 on the CPU and stored rounded to float32 precision.\n")


def run_area_scripts():
    """Runs the per-package generators (scripts/make_<area>_fixtures.py: optim, vision, bridges,
    language, ...) with this interpreter, so that one command regenerates every fixture."""
    import glob
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    for script in sorted(glob.glob(os.path.join(here, "make_*_fixtures.py"))):
        print(f"running {os.path.basename(script)}")
        subprocess.run([sys.executable, script], check=True)


if __name__ == "__main__":
    # `make_fixtures.py` alone writes the Tensor fixtures; `--all` also runs every per-package script.
    status = main()
    if "--all" in sys.argv[1:]:
        run_area_scripts()
    sys.exit(status)
