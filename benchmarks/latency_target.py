"""Latency-targeted vs FLOPs-targeted pruning, measured side by side.

For one model: builds (or loads) its latency table on LiteRT / XNNPACK,
prunes it one-shot at each asked speed-up `s` twice, with
`target_latency=1/s` (the table's knapsack) and with
`flops_pruning_ratio=1 - 1/s` (the FLOP proxy; also with `round_to`
values given by `--flops-round-to`), exports the dense model and every
pruned one, times them all in one interleaved run with
`tflite_bench.base_benchmark.time_interleaved` and prints asked,
predicted and measured speed-up, the kept share of the criterion's
importance (mean over groups of each group's kept share, and the worst
group's) and the FLOPs.

```
python -m benchmarks.latency_target --model mobilenetv2 --threads 2 \\
    --table results/latency/mobilenetv2_224_t2.json \\
    --results-dir results/latency_target
```

Random weights (`weights=None`) are enough: latency does not depend on
them, and the L1 criterion ranks the random filters all the same.
"""

import argparse
import json
import os
import time

import numpy as np


def _pruned(model, criterion, **target):
    from keras_neuronprune import prune_structured
    from keras_neuronprune import strip_pruning

    pruned = prune_structured(model, criterion=criterion, **target)
    pruned.controller.prune(pruned)
    controller = pruned.controller
    counts = controller.kept_counts(pruned)
    scores = controller.importance_histograms(pruned)
    return strip_pruning(pruned), counts, scores


def run(args, log=print):
    """Builds, prunes, exports and times; returns (rows, meta)."""
    from keras_neuronprune import channel_groups
    from keras_neuronprune import count_cost
    from keras_neuronprune.core.selection import ChannelSelector
    from keras_neuronprune.export import tflite
    from keras_neuronprune.pruning._latency_target import LatencyModel
    from keras_neuronprune.pruning._latency_target import kept_importance
    from tflite_bench.base_benchmark import time_interleaved
    from tflite_bench.latency_table import LatencyTable
    from tflite_bench.latency_table import build_table
    from tflite_bench.latency_table import load_model

    started = time.time()
    family, desc, model = load_model(args.model, args.resolution)
    log(f"[{family}] {desc}")
    if args.table and os.path.exists(args.table):
        table = LatencyTable.load(args.table, model=model, threads=args.threads)
        log(f"  table: {args.table} (dense {table.dense_ms:.2f} ms)")
    else:
        table = build_table(
            model,
            threads=args.threads,
            tile=args.tile,
            work_dir=os.path.join(args.results_dir, "table_models"),
            log=log,
        )
        path = args.table or os.path.join(args.results_dir, "table.json")
        table.save(path)
        log(f"  table written to {path}")
    groups = [g for g in channel_groups(model) if g.prunable]
    latency = LatencyModel(table.to_dict(), groups)
    plans = ChannelSelector().plans(groups)
    dense_flops = count_cost(model).flops

    variants = [("dense", None, None, model, None, None)]
    for speedup in args.speedups:
        keep = 1.0 / speedup
        asks = [("latency", {"target_latency": keep,
                             "latency_table": table})]  # fmt: skip
        for round_to in args.flops_round_to:
            label = "flops" if round_to == 1 else f"flops_rt{round_to}"
            asks.append(
                (label, {"flops_pruning_ratio": 1 - keep, "round_to": round_to})
            )
        for method, target in asks:
            t0 = time.time()
            thin, counts, scores = _pruned(model, args.criterion, **target)
            variants.append((method, speedup, target, thin, counts, scores))
            log(
                f"  {method} x{speedup}: predicted x"
                f"{1 / latency.share(counts):.2f}, FLOPs "
                f"{count_cost(thin).flops / dense_flops:.3f} "
                f"({time.time() - t0:.0f}s)"
            )

    model_dir = os.path.join(args.results_dir, "models", family)
    os.makedirs(model_dir, exist_ok=True)
    paths = []
    for method, speedup, _, thin, _, _ in variants:
        label = method if speedup is None else f"{method}_x{speedup:g}"
        path = os.path.join(model_dir, f"{label}.tflite")
        tflite(thin, path, parity_samples=1)
        paths.append(path)
    log(f"  exported {len(paths)} models; timing at {args.threads} thread(s)")
    stats = time_interleaved(
        paths,
        args.threads,
        warmup=args.warmup,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
    )
    dense_ms = stats[0].median_ms
    rows = []
    for (method, speedup, _, thin, counts, scores), s in zip(variants, stats):
        flops = count_cost(thin).flops
        if counts is None:
            importance, worst, predicted = 1.0, 1.0, 1.0
        else:
            importance = kept_importance(plans, scores, counts)
            worst = min(kept_importance([p], scores, counts) for p in plans)
            predicted = 1.0 / latency.share(counts)
        rows.append(
            {
                "model": family,
                "method": method,
                "asked_speedup": speedup,
                "predicted_speedup": predicted,
                "measured_speedup": dense_ms / s.median_ms,
                "median_ms": s.median_ms,
                "p90_ms": s.p90_ms,
                "kept_importance": importance,
                "worst_group_importance": worst,
                "flops": int(flops),
                "flops_kept": flops / dense_flops,
            }
        )
    meta = {
        "model": family,
        "description": desc,
        "criterion": args.criterion,
        "threads": args.threads,
        "table_dense_ms": table.dense_ms,
        "table_built_for": {
            k: v for k, v in table.built_for.items() if k != "layers"
        },
        "rounds": args.rounds,
        "runs_per_round": args.runs_per_round,
        "elapsed_s": round(time.time() - started, 1),
    }
    return rows, meta


def markdown(rows, meta):
    lines = [
        f"## {meta['description']}: {meta['criterion']} criterion, "
        f"{meta['threads']} thread(s), LiteRT "
        f"{meta['table_built_for']['runtime_version']} (XNNPACK)",
        "",
        "| method | asked speed-up | predicted (table) | measured speed-up "
        "| median ms | kept importance (mean / worst group) | FLOPs kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        asked = (
            "-" if r["asked_speedup"] is None else f"{r['asked_speedup']:g}x"
        )
        lines.append(
            f"| {r['method']} | {asked} | {r['predicted_speedup']:.2f}x | "
            f"{r['measured_speedup']:.2f}x | {r['median_ms']:.2f} | "
            f"{r['kept_importance']:.3f} / "
            f"{r['worst_group_importance']:.3f} | {r['flops_kept']:.3f} "
            f"({r['flops'] / 1e6:.0f} M) |"
        )
    return "\n".join(lines)


def build_parser():
    from tflite_bench._args import int_at_least

    positive = int_at_least(1)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.latency_target",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--model", default="mobilenetv2")
    p.add_argument("--resolution", type=positive, default=None)
    p.add_argument("--threads", type=positive, default=2)
    p.add_argument("--criterion", default="l1")
    p.add_argument("--speedups", nargs="+", type=float, default=[2.0, 3.0])
    p.add_argument(
        "--flops-round-to", nargs="+", type=positive, default=[1, 16]
    )
    p.add_argument(
        "--table", help="table JSON: loaded if it exists, else built"
    )
    p.add_argument("--tile", type=positive, default=None)
    p.add_argument("--warmup", type=int_at_least(0), default=5)
    p.add_argument("--rounds", type=positive, default=10)
    p.add_argument("--runs-per-round", type=positive, default=5)
    p.add_argument("--results-dir", default="results/latency_target")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    for s in args.speedups:
        if s <= 1:
            raise SystemExit(f"--speedups must be > 1. Received: {s}")
    rows, meta = run(args)
    os.makedirs(args.results_dir, exist_ok=True)
    text = markdown(rows, meta)
    with open(os.path.join(args.results_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=float)
    with open(os.path.join(args.results_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    import sys

    np.set_printoptions(precision=3)
    sys.exit(main())
