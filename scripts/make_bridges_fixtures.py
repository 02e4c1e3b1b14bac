#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for the Bridges package (Tests/Fixtures/bridges/<name>.json).

Same JSON layout as scripts/make_fixtures.py: {"name", "op", "params", "ints", "tensors", "notes"}.
params hold the configuration and `stateDict`, the parameter names in state_dict order.
Tensors of a case:
  x0, x1, ...        inputs, [B, H*W, C] feature levels (float32 values)
  w.<name>           every parameter of the module, keyed by its state_dict name
  out                the output [B, T, d_llm]
  r                  random weights of the scalar loss sum(out * r)
  grad.<name>        d(sum(out * r)) / d parameter, for every parameter
  grad_x0, ...       d(sum(out * r)) / d input
Inputs and weights are drawn as float32 values; the modules run in float64, and the stored outputs and
gradients are rounded to float32 precision.

The PyTorch modules below are OUR re-implementations, written from the descriptions in
shared/reference/chain-of-sight.md, chain-of-sight-verified.md and connectors-mm1.md (not copies of
the released code):
- CosResampler: the Chain-of-Sight multi-scale windowed resampler with the released projector's module
  structure and parameter names (cls_token_w{ws}_q{nq}, attn_0_w{ws}_l{L}_q{nq}.{to_q, to_kv, proj,
  query_norm, cont_norm}, mlp_0_..., ln_0_..., ln_out, out_proj).
- inflate_state_dict: compound token scaling by parameter inflation (the released extension rules:
  copy every parameter of the source scale under the new name; queries copied (m=1), repeated
  consecutively (m=2), or repeated over the window grid nearest-neighbour (m=k^2)).
- AttentionPooling: the attention-pooling connector as the issue specifies it.
- CAbstractor: Honeybee's C-Abstractor wrapper (pos_emb, net = Sequential(s1, pool, s2), readout MLP)
  around timm's own RegStage (timm.models.regnet) with SiLU and LayerNorm2d, i.e. parity with timm.
- AvgPool and projection connectors.

Needs torch and timm. timm imports torchvision at import time but RegStage never uses it; when
torchvision is not importable a stub module is registered so that timm imports (the stub is never
called). Run by hand: /tmp/torchenv/bin/python scripts/make_bridges_fixtures.py
"""

import importlib.abc
import importlib.machinery
import json
import math
import os
import platform
import sys
import types
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _stub_torchvision():
    try:
        import torchvision  # noqa: F401
        return "installed"
    except Exception:
        pass

    class Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Meta(name, (object,), {})

    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Meta(name, (object,), {})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname == "torchvision" or fullname.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            m = Stub(spec.name)
            m.__path__ = []
            return m

        def exec_module(self, module):
            pass

    for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[k]
    sys.meta_path.insert(0, Finder())
    return "stubbed (unused by RegStage)"


TORCHVISION = _stub_torchvision()
import timm  # noqa: E402
from timm.layers import LayerNorm2d  # noqa: E402
from timm.models.regnet import RegStage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "Fixtures", "bridges")

torch.set_num_threads(1)


def rounded(v):
    v = float(np.float32(v))
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("non-finite value in a fixture")
    return float("%.9g" % v)


def tensor_json(t):
    t = t.detach().to(torch.float64).contiguous()
    return {"shape": list(t.shape), "data": [rounded(v) for v in t.reshape(-1).tolist()]}


def f32(t):
    return t.to(torch.float32).to(torch.float64)


# --------------------------------------------------------------------------------------------------
# Chain-of-Sight (our re-implementation of the released structure)


class CrossAttention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(ctx_dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.query_norm = nn.LayerNorm(dim)
        self.cont_norm = nn.LayerNorm(ctx_dim)

    def forward(self, q, kv):
        n, tq, d = q.shape
        h = self.heads
        q = self.to_q(self.query_norm(q))
        k, v = self.to_kv(self.cont_norm(kv)).chunk(2, dim=-1)

        def heads(t):
            return t.reshape(n, t.shape[1], h, d // h).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        attn = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, tq, d)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CosResampler(nn.Module):
    """levels are HF hidden_states indices; names carry index - 1."""

    def __init__(self, dim, ctx_dim, llm_dim, head_dim, mlp_ratio, side, scales, levels):
        super().__init__()
        self.dim, self.side, self.scales, self.levels = dim, side, scales, levels
        for ws, nq in scales:
            self.register_parameter(f"cls_token_w{ws}_q{nq}", nn.Parameter(torch.zeros(1, nq, dim)))
        for lv in levels:
            for ws, nq in scales:
                sfx = f"0_w{ws}_l{lv - 1}_q{nq}"
                self.add_module(f"attn_{sfx}", CrossAttention(dim, ctx_dim, dim // head_dim))
                self.add_module(f"mlp_{sfx}", Mlp(dim, mlp_ratio * dim))
                self.add_module(f"ln_{sfx}", nn.LayerNorm(dim))
        self.ln_out = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, llm_dim)

    def scale_tokens(self, feats):
        b, c = feats[0].shape[0], feats[0].shape[2]
        out = []
        for ws, nq in self.scales:
            g = self.side // ws
            nwin = g * g
            npw = nq // nwin
            q = getattr(self, f"cls_token_w{ws}_q{nq}").repeat(b, 1, 1).reshape(b * nwin, npw, self.dim)
            for lv, x in zip(self.levels, feats):
                sfx = f"0_w{ws}_l{lv - 1}_q{nq}"
                kv = x.reshape(b, g, ws, g, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nwin, ws * ws, c)
                q = q + getattr(self, f"attn_{sfx}")(q, kv)
                q = q + getattr(self, f"mlp_{sfx}")(getattr(self, f"ln_{sfx}")(q))
            out.append(q.reshape(b, nq, self.dim))
        return out

    def forward(self, feats):
        return self.out_proj(self.ln_out(torch.cat(self.scale_tokens(feats), dim=1)))


def inflate_state_dict(sd, old_side, old_scales, new_side, new_scales_spec, levels):
    """new_scales_spec: list of (source, r, m). Returns the inflated state dict."""
    out = {"ln_out.weight": sd["ln_out.weight"], "ln_out.bias": sd["ln_out.bias"],
           "out_proj.weight": sd["out_proj.weight"], "out_proj.bias": sd["out_proj.bias"]}
    for src, r, m in new_scales_spec:
        ws, nq = old_scales[src]
        nws, nnq = int(ws * r), nq * m
        q = sd[f"cls_token_w{ws}_q{nq}"]
        if m == 1:
            nq_t = q.clone()
        elif m == 2:
            nq_t = q.repeat_interleave(2, dim=1)
        else:
            k = int(round(math.sqrt(m)))
            g = old_side // ws
            t = q.reshape(g, g, nq // (g * g), q.shape[-1])
            t = t.repeat_interleave(k, dim=0).repeat_interleave(k, dim=1)
            nq_t = t.reshape(1, -1, q.shape[-1])
        out[f"cls_token_w{nws}_q{nnq}"] = nq_t
        for lv in levels:
            old_sfx = f"0_w{ws}_l{lv - 1}_q{nq}"
            new_sfx = f"0_w{nws}_l{lv - 1}_q{nnq}"
            for key, val in sd.items():
                for kind in ("attn_", "mlp_", "ln_"):
                    prefix = kind + old_sfx + "."
                    if key.startswith(prefix):
                        out[kind + new_sfx + "." + key[len(prefix):]] = val.clone()
    return out


# --------------------------------------------------------------------------------------------------
# Other connectors


class AttentionPooling(nn.Module):
    def __init__(self, dim, llm_dim, queries, heads, mlp_ratio):
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(1, queries, dim))
        self.ln_q = nn.LayerNorm(dim)
        self.ln_kv = nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.q_proj = nn.Linear(dim, dim)
        self.attn.k_proj = nn.Linear(dim, dim)
        self.attn.v_proj = nn.Linear(dim, dim)
        self.attn.out_proj = nn.Linear(dim, dim)
        self.ln_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio * dim)
        self.ln_out = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, llm_dim)

    def forward(self, x):
        b = x.shape[0]
        q = self.query.expand(b, -1, -1)
        qn, xn = self.ln_q(q), self.ln_kv(x)
        Q, K, V = self.attn.q_proj(qn), self.attn.k_proj(xn), self.attn.v_proj(xn)
        a = F.scaled_dot_product_attention(
            *[t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (Q, K, V)])
        q = q + self.attn.out_proj(a.transpose(1, 2).reshape(b, q.shape[1], -1))
        q = q + self.mlp(self.ln_mlp(q))
        return self.proj(self.ln_out(q))


def build_mlp(depth, hidden, out):
    layers = [nn.Linear(hidden, out)]
    for _ in range(1, depth):
        layers += [nn.SiLU(), nn.Linear(out, out)]
    return nn.Sequential(*layers)


class CAbstractor(nn.Module):
    """Honeybee's projector wrapper (pos_emb, net, readout) around timm's RegStage."""

    def __init__(self, enc, hidden, out, depth, mlp_depth, n_queries, n_tokens):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, n_tokens, enc))
        hw = int(n_queries ** 0.5)

        def stage(cin, cout):
            return RegStage(depth, cin, cout, stride=1, dilation=1, act_layer=nn.SiLU, norm_layer=LayerNorm2d)

        self.net = nn.Sequential(stage(enc, hidden), nn.AdaptiveAvgPool2d((hw, hw)), stage(hidden, hidden))
        self.readout = build_mlp(mlp_depth, hidden, out)

    def forward(self, x):
        x = x + self.pos_emb
        b, n, c = x.shape
        hw = int(n ** 0.5)
        x = x.reshape(b, hw, hw, c).permute(0, 3, 1, 2)
        x = self.net(x)
        x = x.permute(0, 2, 3, 1).reshape(b, -1, x.shape[1])
        return self.readout(x)


class AvgPool(nn.Module):
    def __init__(self, dim, llm_dim, out_hw, grid):
        super().__init__()
        self.out_hw, self.grid = out_hw, grid
        self.proj = nn.Linear(dim, llm_dim)

    def forward(self, x):
        b, n, c = x.shape
        m = x.reshape(b, self.grid[0], self.grid[1], c).permute(0, 3, 1, 2)
        y = F.adaptive_avg_pool2d(m, self.out_hw)
        return self.proj(y.permute(0, 2, 3, 1).reshape(b, -1, c))


def Projection(dim, llm_dim, depth):
    """LLaVA's mlp{depth}x_gelu: Sequential(Linear, GELU, Linear, ...) (names 0, 2, ...)."""
    layers = [nn.Linear(dim, llm_dim)]
    for _ in range(1, depth):
        layers += [nn.GELU(), nn.Linear(llm_dim, llm_dim)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------------


def fill_weights(module, gen):
    """Float32-valued weights of O(1) effect: norms 1 + 0.1 N, biases 0.1 N, matrices N / sqrt(fan_in),
    queries and position embeddings 0.5 N."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            leaf = name.split(".")[-1]
            if name.startswith("cls_token") or name in ("query", "pos_emb"):
                v = 0.5 * z
            elif leaf == "bias":
                v = 0.1 * z
            elif p.dim() == 1:
                v = 1 + 0.1 * z
            else:
                fan_in = p[0].numel()
                v = z / math.sqrt(fan_in)
            p.copy_(v.to(p.dtype))


def write_case(name, op, params, module, inputs, forward, grads=True):
    gen = torch.Generator().manual_seed(zlib.crc32((name + "/r").encode()))
    module = module.double()
    xs = [f32(x).clone().requires_grad_(grads) for x in inputs]
    out = forward(module, xs)
    tensors = {f"x{i}": x for i, x in enumerate(xs)}
    for k, v in module.state_dict().items():
        tensors["w." + k] = v
    tensors["out"] = out
    if grads:
        r = f32(torch.rand(out.shape, generator=gen, dtype=torch.float32) * 2 - 1)
        module.zero_grad()
        (out * r).sum().backward()
        tensors["r"] = r
        for k, p in module.named_parameters():
            tensors["grad." + k] = p.grad
        for i, x in enumerate(xs):
            tensors[f"grad_x{i}"] = x.grad
    # float32 run of the same module, for the notes
    m32 = module.float()
    out32 = forward(m32, [x.detach().float() for x in xs]).double()
    module.double()
    err = ((out32 - out.detach()).abs().max() / out.detach().abs().max()).item()
    params = dict(params, stateDict=list(module.state_dict().keys()))
    doc = {"name": name, "op": op, "params": params, "ints": {},
           "tensors": {k: tensor_json(v) for k, v in tensors.items()},
           "notes": {"torch_float32_rel_err": {"out": err}}}
    path = os.path.join(OUT_DIR, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"{name}: {os.path.getsize(path) // 1024} KB, out {list(out.shape)}, f32 err {err:.2e}")


def randn(name, shape):
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)

    # Chain-of-Sight forward and gradients: 8x8 grid, three scales (global, 4x4 windows, 2x2
    # windows), two feature levels (hidden_states 3 and 5 -> names l2, l4), vision width 12 != dim 8.
    p = dict(visionDim=12, dim=8, llmDim=10, headDim=4, mlpRatio=2, side=8,
             scales=[[8, 4], [4, 8], [2, 16]], featureLevels=[3, 5], batch=2)
    gen = torch.Generator().manual_seed(zlib.crc32(b"cos_forward"))
    m = CosResampler(p["dim"], p["visionDim"], p["llmDim"], p["headDim"], p["mlpRatio"], p["side"],
                     [tuple(s) for s in p["scales"]], p["featureLevels"])
    fill_weights(m, gen)
    xs = [randn(f"cos_forward/x{i}", (2, 64, 12)) for i in range(2)]
    write_case("cos_forward", "chain_of_sight", p, m, xs, lambda mod, x: mod(x))

    # Inflation: a trained 4x4-grid resampler (global window with 3 queries, 2x2 windows with 1 each)
    # extended to an 8x8 grid with (0, r2, m1), (0, r1, m4), (1, r2, m2), (1, r0.5, m16).
    p = dict(visionDim=8, dim=8, llmDim=6, headDim=4, mlpRatio=2, side=4, scales=[[4, 3], [2, 4]],
             featureLevels=[1, 2], newSide=8, extension=[[0, 2.0, 1], [0, 1.0, 4], [1, 2.0, 2], [1, 0.5, 16]])
    gen = torch.Generator().manual_seed(zlib.crc32(b"cos_inflate"))
    trained = CosResampler(8, 8, 6, 4, 2, 4, [(4, 3), (2, 4)], [1, 2])
    fill_weights(trained, gen)
    new_scales = [(int(trained.scales[s][0] * r), trained.scales[s][1] * m_) for s, r, m_ in p["extension"]]
    big = CosResampler(8, 8, 6, 4, 2, 8, new_scales, [1, 2])
    sd = inflate_state_dict(trained.state_dict(), 4, trained.scales, 8, p["extension"], [1, 2])
    big.load_state_dict(sd, strict=True)
    p["newScales"] = [list(s) for s in new_scales]
    xs = [randn(f"cos_inflate/x{i}", (1, 64, 8)) for i in range(2)]
    # Stored weights are the trained ones; `out` is the inflated model's output on the 8x8 inputs.
    trained = trained.double()
    big = big.double()
    out = big([f32(x) for x in xs])
    tensors = {f"x{i}": f32(x) for i, x in enumerate(xs)}
    for k, v in trained.state_dict().items():
        tensors["w." + k] = v
    tensors["out"] = out
    p["stateDict"] = list(trained.state_dict().keys())
    p["inflatedStateDict"] = list(big.state_dict().keys())
    doc = {"name": "cos_inflate", "op": "chain_of_sight_inflate", "params": p, "ints": {},
           "tensors": {k: tensor_json(v) for k, v in tensors.items()}}
    with open(os.path.join(OUT_DIR, "cos_inflate.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"cos_inflate: out {list(out.shape)}")

    # Attention pooling: 3x3 grid, width 8, 2 heads, 5 queries.
    p = dict(visionDim=8, llmDim=6, queries=5, heads=2, mlpRatio=2, grid=[3, 3], batch=2)
    gen = torch.Generator().manual_seed(zlib.crc32(b"attention_pooling"))
    m = AttentionPooling(8, 6, 5, 2, 2)
    fill_weights(m, gen)
    write_case("attention_pooling", "attention_pooling", p, m, [randn("attention_pooling/x0", (2, 9, 8))],
               lambda mod, x: mod(x[0]))

    # C-Abstractor on timm RegStage: vision width 6 -> hidden 8 (so b1 has a 1x1 conv shortcut), depth
    # 2, 5x5 grid pooled to 2x2 (overlapping adaptive bins), readout depth 2.
    p = dict(visionDim=6, hiddenSize=8, llmDim=5, depth=2, mlpDepth=2, numQueries=4, grid=[5, 5], batch=2)
    gen = torch.Generator().manual_seed(zlib.crc32(b"c_abstractor"))
    m = CAbstractor(6, 8, 5, 2, 2, 4, 25)
    fill_weights(m, gen)
    write_case("c_abstractor", "c_abstractor", p, m, [randn("c_abstractor/x0", (2, 25, 6))], lambda mod, x: mod(x[0]))

    # Average pooling 27x27 -> 12x12 (overlapping bins of 3), then linear.
    p = dict(visionDim=2, llmDim=3, outputGrid=[12, 12], grid=[27, 27], batch=1)
    gen = torch.Generator().manual_seed(zlib.crc32(b"average_pooling"))
    m = AvgPool(2, 3, (12, 12), (27, 27))
    fill_weights(m, gen)
    write_case("average_pooling", "average_pooling", p, m, [randn("average_pooling/x0", (1, 729, 2))],
               lambda mod, x: mod(x[0]))

    # LLaVA-1.5 mlp2x_gelu projection.
    p = dict(visionDim=4, llmDim=5, depth=2, grid=[3, 3], batch=2)
    gen = torch.Generator().manual_seed(zlib.crc32(b"projection_mlp2"))
    m = Projection(4, 5, 2)
    fill_weights(m, gen)
    write_case("projection_mlp2", "projection", p, m, [randn("projection_mlp2/x0", (2, 9, 4))],
               lambda mod, x: mod(x[0]))

    with open(os.path.join(OUT_DIR, "VERSIONS.md"), "w") as f:
        f.write("# Versions used to generate the Bridges fixtures\n\n")
        f.write("`Tests/Fixtures/bridges/*.json` were written by `scripts/make_bridges_fixtures.py` with:\n\n")
        f.write(f"- Python {platform.python_version()} ({platform.system()} {platform.machine()})\n")
        f.write(f"- torch {torch.__version__}\n- timm {timm.__version__} (RegStage, LayerNorm2d)\n")
        f.write(f"- numpy {np.__version__}\n- torchvision: {TORCHVISION}\n\n")
        f.write("Modules run in float64 on float32-valued inputs and weights; outputs and gradients are stored\n"
                "rounded to float32 precision. The Chain-of-Sight, attention-pooling and C-Abstractor-wrapper\n"
                "modules are our re-implementations from the reference notes; the RegNet stages are timm's.\n")


if __name__ == "__main__":
    main()
