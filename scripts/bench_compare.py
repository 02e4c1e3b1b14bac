#!/usr/bin/env python3
"""Sightline against PyTorch on the benchmark models, in one run: for each config and connector, runs
``sightline-bench model`` (release), ``scripts/bench_torch.py --mode eager`` (fused AdamW) and, with
``--compile``, ``--mode compile``, alternating the frameworks round by round (A/B/C, B/C/A, ...) so
that the load of a shared machine falls on all of them alike. Each run is its own process (its own
peak RSS). Prints, per config and connector, the median over rounds of each framework's median step
time and phases, the ratio Sightline / PyTorch (below 1: Sightline is faster) and the spread of the
ratio over rounds (the noise), and writes every run to ``--json``.

    python3 scripts/bench_compare.py --configs tiny small --rounds 3 --compile --json bench.json

``--omp-wait-policy`` is passed to bench_torch.py (default PASSIVE; see its docstring: PyTorch's
OpenMP threads spin-wait on a loaded machine) and printed with the results.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = [("step", "step_s"), ("forward", "forward_s"), ("backward", "backward_s"), ("clip+optim", "optimizer_s")]


def run_one(framework, config, connector, args):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = dict(os.environ)
    if args.threads:
        env["SIGHTLINE_NUM_THREADS"] = str(args.threads)
    if framework == "sightline":
        cmd = [os.path.join(ROOT, "Benchmarks", ".build", "release", "sightline-bench"), "model", "--config", config,
               "--connector", connector, "--steps", str(args.steps), "--warmup", str(args.warmup), "--json", out]
    else:
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "bench_torch.py"), "--config", config, "--connector",
               connector, "--mode", framework, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--omp-wait-policy", args.omp_wait_policy, "--json", out]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    last = [line for line in r.stdout.splitlines() if line.strip()][-1]
    print("   ", last, flush=True)
    with open(out) as f:
        result = json.load(f)[0]
    os.unlink(out)
    return result


def connectors_of(config):
    import yaml

    path = config if config.endswith(".yaml") else os.path.join(ROOT, "Benchmarks", "configs", config + ".yaml")
    with open(path) as f:
        return [c["name"] for c in yaml.safe_load(f)["connectors"]]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument("--connectors", nargs="+", default=None,
                   help="connector names (default: each config's first); 'all' for the sweep")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also run torch.compile")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--omp-wait-policy", default="PASSIVE")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--package-path", os.path.join(ROOT, "Benchmarks")],
                       check=True, stdout=subprocess.DEVNULL)
    frameworks = ["sightline", "eager"] + (["compile"] if args.compile else [])
    runs = []
    table = []
    for config in args.configs:
        names = connectors_of(config)
        if args.connectors == ["all"]:
            chosen = names
        elif args.connectors:
            chosen = [c for c in args.connectors if c in names]
        else:
            chosen = names[:1]
        for connector in chosen:
            print(f"== {config} / {connector}", flush=True)
            results = {f: [] for f in frameworks}
            for r in range(args.rounds):
                order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
                for fw in order:
                    res = run_one(fw, config, connector, args)
                    res["round"] = r
                    results[fw].append(res)
                    runs.append(res)
            row = {"config": config, "connector": connector}
            sl = results["sightline"]
            for fw in frameworks[1:]:
                for phase, key in PHASES:
                    ratios = [a[key] / b[key] for a, b in zip(sl, results[fw])]
                    row[f"{phase} vs {fw}"] = (statistics.median(ratios), min(ratios), max(ratios))
                # Best case: the fastest step either framework achieved over all rounds.
                row[f"best vs {fw}"] = min(x["step_s_min"] for x in sl) / min(x["step_s_min"] for x in results[fw])
            for fw in frameworks:
                row[fw] = {key: statistics.median(x[key] for x in results[fw]) for _, key in PHASES}
                row[fw]["peak_rss_mb"] = max(x["peak_rss_mb"] for x in results[fw])
                row[fw]["fraction_of_sgemm"] = statistics.median(x["fraction_of_sgemm"] for x in results[fw])
                row[fw]["sgemm_gflops"] = statistics.median(x["sgemm_gflops"] for x in results[fw])
                row[fw]["step_s_min"] = min(x["step_s_min"] for x in results[fw])
                row[fw]["fraction_of_sgemm_best"] = max(x["fraction_of_sgemm_best"] for x in results[fw])
            row["mallocs_per_step"] = statistics.median(x["mallocs_per_step"] for x in sl)
            row["flops_per_step"] = sl[0]["flops_per_step"]
            table.append(row)
            print_row(row, frameworks)
    print(f"\nOMP_WAIT_POLICY={args.omp_wait_policy} for PyTorch; threads {runs[0]['threads']}; "
          f"Sightline BLAS: {runs[0]['blas']}")
    print("\nStep time: median over rounds of each run's median (best step over all rounds in brackets); "
          "ratio: median over rounds of Sightline / PyTorch (range over rounds; best step / best step)")
    print("\n| config | connector | Sightline s | " + " | ".join(
        f"PyTorch {fw} s | ratio vs {fw}" for fw in frameworks[1:]) + " |")
    print("|" + " --- |" * (3 + 2 * (len(frameworks) - 1)))
    for row in table:
        cells = [row["config"], row["connector"],
                 f"{row['sightline']['step_s']:.4f} ({row['sightline']['step_s_min']:.4f})"]
        for fw in frameworks[1:]:
            m, lo, hi = row[f"step vs {fw}"]
            cells += [f"{row[fw]['step_s']:.4f} ({row[fw]['step_s_min']:.4f})",
                      f"{m:.2f}x ({lo:.2f}-{hi:.2f}; best {row[f'best vs {fw}']:.2f}x)"]
        print("| " + " | ".join(cells) + " |")
    print("\n| config | connector | phase | " + " | ".join(f"ratio vs {fw} (range)" for fw in frameworks[1:]) + " |")
    print("|" + " --- |" * (3 + len(frameworks) - 1))
    for row in table:
        for phase, _ in PHASES[1:]:
            cells = [row["config"], row["connector"], phase]
            for fw in frameworks[1:]:
                m, lo, hi = row[f"{phase} vs {fw}"]
                cells.append(f"{m:.2f}x ({lo:.2f}-{hi:.2f})")
            print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "table": table}, f, indent=1, sort_keys=True)


def print_row(row, frameworks):
    for fw in frameworks[1:]:
        parts = []
        for phase, _ in PHASES:
            m, lo, hi = row[f"{phase} vs {fw}"]
            parts.append(f"{phase} {m:.2f}x ({lo:.2f}-{hi:.2f})")
        print(f"  Sightline / PyTorch {fw}: " + ", ".join(parts))
    for fw in frameworks:
        r = row[fw]
        print(f"  {fw:9s} step {r['step_s']:.4f} s, fwd {r['forward_s']:.4f}, bwd {r['backward_s']:.4f}, "
              f"clip+optim {r['optimizer_s']:.4f}, {r['fraction_of_sgemm']:.2f} of sgemm "
              f"({r['sgemm_gflops']:.0f} GFLOP/s; best step / best sgemm {r['fraction_of_sgemm_best']:.2f}), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"  Sightline mallocs per step {row['mallocs_per_step']:.0f}; model {row['flops_per_step'] * 1e-9:.2f} "
          f"GFLOP per step", flush=True)


if __name__ == "__main__":
    main()
