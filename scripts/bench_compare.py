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
        cmd = [args.sightline_bench, "model", "--config", config,
               "--connector", connector, "--steps", str(args.steps), "--warmup", str(args.warmup), "--json", out]
    else:
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "bench_torch.py"), "--config", config, "--connector",
               connector, "--mode", framework, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--omp-wait-policy", args.omp_wait_policy, "--json", out]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
    load_before = os.getloadavg()[0]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    load_after = os.getloadavg()[0]
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    last = [line for line in r.stdout.splitlines() if line.strip()][-1]
    print(f"    [load {load_before:.1f}->{load_after:.1f}]", last, flush=True)
    with open(out) as f:
        result = json.load(f)[0]
    # The machine's 1-minute load average before and after the run (how shared it was).
    result["load_average"] = [load_before, load_after]
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
    p.add_argument("--sightline-bench", default=os.path.join(ROOT, "Benchmarks", ".build", "release", "sightline-bench"),
                   help="the sightline-bench executable (e.g. a copy, so that rebuilding does not change a long run)")
    p.add_argument("--json", default=None)
    p.add_argument("--report", default=None, help="print the tables of a saved --json file and exit")
    args = p.parse_args()
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        frameworks = ["sightline"] + [fw for fw in ("eager", "compile") if fw in saved["table"][0]]
        report(saved["runs"], saved["table"], frameworks, saved.get("omp_wait_policy", "PASSIVE"))
        return
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
    report(runs, table, frameworks, args.omp_wait_policy)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "table": table, "omp_wait_policy": args.omp_wait_policy}, f, indent=1,
                      sort_keys=True)


def report(runs, table, frameworks, omp_wait_policy):
    """Prints the tables of a finished run (also from a saved ``--json`` with ``--report``)."""
    loads = [x for run in runs for x in run["load_average"]]
    print(f"\nLoad average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}, "
          f"median {statistics.median(loads):.1f} on {os.cpu_count()} CPUs")
    print(f"OMP_WAIT_POLICY={omp_wait_policy} for PyTorch; threads {runs[0]['threads']}; "
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
    print("\n| config | connector | framework | GFLOP/step | fraction of same-process sgemm (sgemm GFLOP/s; "
          "best step / best sgemm) | peak RSS MB | mallocs/step |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in table:
        for fw in frameworks:
            r = row[fw]
            mallocs = f"{row['mallocs_per_step']:.0f}" if fw == "sightline" else ""
            print(f"| {row['config']} | {row['connector']} | {fw} | {row['flops_per_step'] * 1e-9:.1f} | "
                  f"{r['fraction_of_sgemm']:.2f} ({r['sgemm_gflops']:.0f}; {r['fraction_of_sgemm_best']:.2f}) | "
                  f"{r['peak_rss_mb']:.0f} | {mallocs} |")
    print_speedups(table, frameworks)


def print_speedups(table, frameworks, fast="cos32", slow="linear"):
    """The Chain-of-Sight speed-up: per config holding both connectors, the step-time ratio
    fast / slow of each framework against the ratio of their model FLOPs (the issue's target: within
    10% of the FLOP ratio)."""
    rows = {(r["config"], r["connector"]): r for r in table}
    lines = []
    for config in dict.fromkeys(r["config"] for r in table):
        a, b = rows.get((config, fast)), rows.get((config, slow))
        if a is None or b is None:
            continue
        flop_ratio = a["flops_per_step"] / b["flops_per_step"]
        for fw in frameworks:
            time_ratio = a[fw]["step_s"] / b[fw]["step_s"]
            best_ratio = a[fw]["step_s_min"] / b[fw]["step_s_min"]
            lines.append(f"| {config} | {fw} | {flop_ratio:.3f} | {time_ratio:.3f} ({time_ratio / flop_ratio - 1:+.1%}) | "
                         f"{best_ratio:.3f} ({best_ratio / flop_ratio - 1:+.1%}) |")
    if lines:
        print(f"\n{fast} / {slow}: FLOP ratio and step-time ratio (median steps; fastest steps); in brackets the "
              "deviation of the time ratio from the FLOP ratio")
        print("\n| config | framework | FLOP ratio | step-time ratio | fastest-step ratio |\n| --- | --- | --- | --- | --- |")
        print("\n".join(lines))


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
