#!/usr/bin/env python3
"""The training step of the benchmark models (``Benchmarks/configs/*.yaml``) in PyTorch: HF
``CLIPVisionModel`` (frozen) -> the ``sightline_torch`` connector -> HF ``LlamaForCausalLM``, the
next-token loss over the text tokens with z-loss, ``clip_grad_norm_`` and AdamW (``fused=True``),
eager or under ``torch.compile``. It measures what ``sightline-bench model`` measures: the median
step time over ``--steps`` timed steps after ``--warmup``, the phases (forward, backward, clip +
optimizer), tokens/s, the model FLOPs of a step (the same formula, docs/benchmarks.md) and the GFLOP/s
achieved as a fraction of a 1024^3 ``torch.mm`` measured in the same process, peak RSS, the BLAS
library and thread count. One JSON object per run (``--json``).

    python3 scripts/bench_torch.py --config small --connector cos32 --mode eager --json out.json

The computation is Sightline's: the image tokens come first in each row and replace the placeholder
embeddings, every text token is supervised, and the head runs on the supervised positions only (as
``MultimodalModel.loss``); the loss is the mean over the supervised tokens of cross-entropy plus
``z_loss * logsumexp^2``.

OpenMP: on a loaded machine PyTorch's OpenMP threads spin-wait for work (libgomp's default active
wait), which makes small steps 10-50x slower when the threads lose their cores to other processes;
``OMP_WAIT_POLICY=PASSIVE`` makes them sleep instead. ``--omp-wait-policy`` sets it before torch is
imported (default ``PASSIVE``, PyTorch's better setting on a shared machine) and the JSON reports
the setting used.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny", help="tiny, small, caption or a YAML path")
    p.add_argument("--connector", default=None, help="a connector name of the config (default: its first)")
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPUs available)")
    p.add_argument("--omp-wait-policy", default="PASSIVE", help="PASSIVE, ACTIVE or unset (inherit)")
    p.add_argument("--flop-count", action="store_true", help="also count a step's FLOPs with FlopCounterMode")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.omp_wait_policy.lower() != "unset":
    os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy.upper()

import torch  # noqa: E402  (after OMP_WAIT_POLICY)
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
from sightline_torch import SightlineMultimodalModel  # noqa: E402


def load_config(name):
    path = name if name.endswith(".yaml") else os.path.join(ROOT, "Benchmarks", "configs", name + ".yaml")
    with open(path) as f:
        return yaml.safe_load(f)


def token_count(connector):
    t = connector["type"]
    if t == "chain_of_sight":
        return sum(s["queries"] for s in connector["scales"])
    if t == "average_pooling":
        return connector["outputGrid"]["height"] * connector["outputGrid"]["width"]
    if t == "c_abstractor":
        return connector["numQueries"]
    if t == "attention_pooling":
        return connector["queries"]
    return None  # projection: every patch


def step_flops(vision, connector, lang, batch, image_tokens, text_tokens):
    """The model FLOPs of a training step (the formula of docs/benchmarks.md, as `stepFLOPs` in
    Benchmarks/Sources/SightlineBench/ModelSuite.swift)."""
    b = float(batch)
    side = vision["image_size"] // vision["patch_size"]
    p = float(side * side)
    cv = float(vision["hidden_size"])
    sv = p + 1
    n_layers = vision["num_hidden_layers"]
    levels = connector.get("featureLevels") or [connector.get("featureLevel", -2)]
    deepest = max(lv if lv >= 0 else n_layers + 1 + lv for lv in levels)
    vis = 2 * b * p * 3 * vision["patch_size"] ** 2 * cv
    vis += deepest * (2 * b * sv * (4 * cv * cv + 2 * cv * vision["intermediate_size"]) + 4 * b * sv * sv * cv)
    t = connector["type"]
    llm = float(connector["llmDim"])
    if t == "projection":
        conn = 2 * b * p * cv * llm + (connector.get("depth", 2) - 1) * 2 * b * p * llm * llm
    elif t == "average_pooling":
        conn = 2 * b * token_count(connector) * cv * llm
    elif t == "c_abstractor":
        h, m = float(connector.get("hiddenSize", 1024)), float(connector["numQueries"])
        depth = connector.get("depth", 3)

        def stage(n, cin):
            f = 0.0
            for i in range(depth):
                inp = cin if i == 0 else h
                f += 2 * n * inp * h + 18 * n * h + 2 * n * h * h
                if inp != h:
                    f += 2 * n * inp * h
            return f

        conn = b * (stage(p, cv) + stage(m, h) + 2 * m * h * llm + (connector.get("mlpDepth", 2) - 1) * 2 * m * llm * llm)
    elif t == "chain_of_sight":
        d = float(connector.get("dim") or cv)
        ratio = connector.get("mlpRatio", 4)
        conn = 0.0
        for _ in levels:
            for s in connector["scales"]:
                q, w = float(s["queries"]), float(s["windowSize"] ** 2)
                conn += 2 * b * p * cv * 2 * d + 2 * b * q * d * d * 2 + 4 * b * q * w * d + 2 * b * q * d * ratio * d * 2
        conn += 2 * b * token_count(connector) * d * llm
    else:
        raise ValueError(f"no FLOP formula for connector type {t}")
    h = float(lang["hidden_size"])
    head_dim = lang.get("head_dim") or lang["hidden_size"] // lang["num_attention_heads"]
    kv = float(lang.get("num_key_value_heads", lang["num_attention_heads"]) * head_dim)
    tt = float(image_tokens + text_tokens)
    dec = lang["num_hidden_layers"] * (
        2 * b * tt * (2 * h * h + 2 * h * kv + 3 * h * lang["intermediate_size"]) + 4 * b * tt * tt * h)
    head = 2 * b * text_tokens * h * lang["vocab_size"]
    return {"vision_forward": vis, "connector_forward": conn, "decoder_forward": dec, "head_forward": head,
            "total": vis + 3 * (conn + dec + head)}


def blas_info():
    import re

    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    blas = found.group(1) if found else "unknown"
    return f"BLAS {blas}, MKL {'on' if torch.backends.mkl.is_available() else 'off'}, " \
        f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}, CPU capability {torch.backends.cpu.get_cpu_capability()}"


def sgemm_gflops(n=1024, repeats=10):
    """Best and median GFLOP/s of a 1024^3 ``torch.mm`` over ``repeats`` calls."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    out = torch.empty(n, n)
    for _ in range(2):
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        rates.append(2 * n ** 3 / (time.perf_counter() - t0) * 1e-9)
    return max(rates), statistics.median(rates)


def build(cfg, connector_entry):
    m = cfg["model"]
    torch.manual_seed(m.get("seed", 0))
    vision = dict(m["vision"])
    lang = dict(m["language_model"])
    model = SightlineMultimodalModel(vision, connector_entry["config"], lang, m["image_token_id"])
    # The connector modules leave learned queries and position embeddings at zero (placeholders for
    # loaded weights): give them a random start as Sightline's initialisation does.
    for name, p in model.multi_modal_projector.named_parameters():
        if "cls_token" in name or "pos_emb" in name:
            torch.nn.init.normal_(p, std=0.02)
    model.vision_tower.requires_grad_(False)
    model.train()
    return model


def make_loss(model, image_tokens, text_tokens, z_loss, grid):
    connector = model.multi_modal_projector
    levels = connector.feature_levels
    embed = model.language_model.get_input_embeddings()
    decoder = model.language_model.model
    head = model.language_model.lm_head

    def loss_fn(pixels, text_ids):
        with torch.no_grad():
            hidden = model.vision_tower(pixels)  # frozen: no graph
        tokens = connector([hidden[lv][:, 1:, :] for lv in levels], grid=grid)
        embeds = torch.cat([tokens, embed(text_ids)], dim=1)
        h = decoder(inputs_embeds=embeds).last_hidden_state
        # Position i predicts token i + 1: the last image position and every text position but the last.
        rows = h[:, image_tokens - 1:-1, :].reshape(-1, h.shape[-1])
        logits = head(rows)
        targets = text_ids.reshape(-1)
        lse = torch.logsumexp(logits, dim=-1)
        ce = F.cross_entropy(logits, targets, reduction="sum")
        return (ce + z_loss * (lse * lse).sum()) / targets.numel()

    return loss_fn


def run(args):
    cfg = load_config(args.config)
    entries = cfg["connectors"]
    entry = entries[0] if args.connector is None else next((c for c in entries if c["name"] == args.connector), None)
    if entry is None:
        raise SystemExit(f"{cfg['name']}: unknown connector {args.connector} (known: {[c['name'] for c in entries]})")
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    m, o = cfg["model"], cfg["optimization"]
    side = m["vision"]["image_size"] // m["vision"]["patch_size"]
    image_tokens = token_count(entry["config"]) or side * side
    batch, text_tokens = cfg["batch"], cfg["text_tokens"]
    vocab = m["language_model"]["vocab_size"]

    model = build(cfg, entry)
    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(batch, 3, m["vision"]["image_size"], m["vision"]["image_size"], generator=g)
    text_ids = torch.randint(1, vocab, (batch, text_tokens), generator=g)
    loss_fn = make_loss(model, image_tokens, text_tokens, float(o["z_loss"]), (side, side))
    if args.mode == "compile":
        loss_fn = torch.compile(loss_fn)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(o["learning_rate"]), betas=(o["beta1"], o["beta2"]), eps=float(o["eps"]), fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = loss_fn(pixels, text_ids)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, o["clip_norm"])
        opt.step()
        t3 = time.perf_counter()
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2, float(loss.detach())

    compile_s = None
    c0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    if args.mode == "compile":
        compile_s = time.perf_counter() - c0
    sgemm_before = sgemm_gflops()
    times, fwd, bwd, opt_t, losses = [], [], [], [], []
    for _ in range(args.steps):
        t, f, b, u, loss = step()
        times.append(t)
        fwd.append(f)
        bwd.append(b)
        opt_t.append(u)
        losses.append(loss)
    sgemm_after = sgemm_gflops()
    # The machine is shared: the mm rate is taken before and after the steps.
    sgemm = (sgemm_before[1] + sgemm_after[1]) / 2
    sgemm_best = max(sgemm_before[0], sgemm_after[0])
    flops = step_flops(m["vision"], entry["config"], m["language_model"], batch, image_tokens, text_tokens)
    step_s = statistics.median(times)
    tokens = batch * (image_tokens + text_tokens)
    achieved = flops["total"] / step_s * 1e-9
    out = {
        "framework": "pytorch", "mode": args.mode, "config": cfg["name"], "connector": entry["name"],
        "connector_label": entry["label"], "image_tokens": image_tokens, "text_tokens": text_tokens,
        "batch": batch, "tokens_per_step": tokens, "trainable_parameters": sum(p.numel() for p in params),
        "steps": args.steps, "warmup": args.warmup, "step_s": step_s, "step_s_all": times,
        "forward_s": statistics.median(fwd), "backward_s": statistics.median(bwd),
        "optimizer_s": statistics.median(opt_t), "tokens_per_s": tokens / step_s,
        "flops_per_step": flops["total"], "flops_parts": {k: v for k, v in flops.items() if k != "total"},
        "achieved_gflops": achieved, "sgemm_gflops": sgemm, "fraction_of_sgemm": achieved / sgemm,
        "step_s_min": min(times), "sgemm_gflops_best": sgemm_best,
        "fraction_of_sgemm_best": flops["total"] / min(times) * 1e-9 / sgemm_best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "mallocs_per_step": None,
        "blas": blas_info(), "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"), "torch": torch.__version__,
        "compile_and_warmup_s": compile_s, "losses": losses,
    }
    if args.flop_count:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            loss = make_loss(model, image_tokens, text_tokens, float(o["z_loss"]), (side, side))(pixels, text_ids)
            loss.backward()
        out["flops_counted_fwd_bwd"] = counter.get_total_flops()
    print(
        f"torch-{args.mode} {cfg['name']}/{entry['name']}: step {step_s:.4f} s (fwd {out['forward_s']:.4f}, "
        f"bwd {out['backward_s']:.4f}, opt {out['optimizer_s']:.4f}), {out['tokens_per_s']:.0f} tokens/s, "
        f"{flops['total'] * 1e-9:.1f} GFLOP/step, {achieved:.1f} GFLOP/s = {achieved / sgemm:.2f} of mm {sgemm:.1f}, "
        f"RSS {out['peak_rss_mb']:.0f} MB, {threads} threads, OMP_WAIT_POLICY={out['omp_wait_policy']}",
        flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([out], f, indent=1, sort_keys=True)
    return out


if __name__ == "__main__":
    run(ARGS)
