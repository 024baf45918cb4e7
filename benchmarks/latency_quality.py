"""Accuracy at equal latency: latency-targeted vs FLOPs-targeted pruning.

On the quality benchmark's model and data (`benchmarks.quality`; every
option of `python -m benchmarks.quality` is accepted, the dense
checkpoints are found in `<results-dir>/cache` or trained there), for
each speed-up `s`:

* **latency**: `prune_structured(target_latency=1/s, latency_table=t)`,
  the knapsack over the model's latency table `t` (LiteRT / XNNPACK at
  `--threads`, measured once and kept in the results folder);
* **flops**: `prune_structured(flops_pruning_ratio=r)` with `r` bisected
  so that the table predicts the same latency as for the latency-targeted
  model: both are compared at equal (predicted) latency.

Both are fine-tuned with the quality benchmark's budget
(`benchmarks.quality.methods.run`: same optimiser, learning-rate
schedule, epochs, batches and seeds as its other rows), then the dense
model and every pruned architecture are exported to TFLite and timed in
one interleaved run (`tflite_bench.base_benchmark.time_interleaved`).
Outputs in `--results-dir`: latency_quality.json, latency_quality.md,
latency_vs_accuracy.png, the table (latency_table_t<threads>.json) and
the finished runs (runs/, resumed when run again).

```
python -m benchmarks.latency_quality --data-dir ../shared/data \\
    --dataset cifar10 --models resnet20 --width 0.5 --seeds 0,1 \\
    --epochs 10 --reg-epochs 2 --finetune-epochs 3 --batch-size 128 \\
    --train-subset 10000 --test-subset 5000 --speedups 1.5,2,3 \\
    --first-seed-only 1.5,3 --results-dir results/latency_quality
python -m benchmarks.latency_quality --quick   # generated data, seconds
```

Latency does not depend on the weights, so the timed models are the
pruned architectures with the dense weights (the same kept counts as the
fine-tuned models, checked); accuracy is the fine-tuned model's, in
Keras, on the test images.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.quality import cli as quality_cli

METHODS = ("latency", "flops")
# Bisection of the FLOPs ratio stops this close to the latency-targeted
# model's predicted latency (relative).
MATCH_TOLERANCE = 0.002


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.latency_quality",
        description=__doc__.split("\n\n")[0],
        epilog="Every other option is passed to the quality benchmark "
        "(python -m benchmarks.quality --help): --data-dir, --dataset, "
        "--models (the first one is used), --width, --seeds, --epochs, "
        "--reg-epochs, --finetune-epochs, --batch-size, --train-subset, "
        "--test-subset, --results-dir, --quick, --quiet.",
    )
    add = p.add_argument
    add("--speedups", default="1.5,2,3", help="comma list, each > 1")
    add(
        "--first-seed-only",
        default="",
        help="comma list of speed-ups run with the first seed only",
    )
    add("--criterion", default="l1")
    add("--threads", type=int, default=2)
    add("--tile", type=int, help="channel tile of the table (default: detect)")
    add("--table-samples", type=int, default=4)
    add("--table-rounds", type=int, default=5)
    add(
        "--match-iterations",
        type=int,
        default=12,
        help="bisection steps of the FLOPs ratio (each prunes once)",
    )
    add("--rounds", type=int, default=20, help="timing rounds")
    add("--runs-per-round", type=int, default=20)
    return p


def parse_args(argv=None):
    """`(args, quality_args)`: this script's options and the benchmark's."""
    args, rest = build_parser().parse_known_args(argv)
    quality = quality_cli.parse_args(rest)
    quality.criteria = args.criterion
    quality.models = quality_cli._list(quality.models)[0]
    args.speedups = _speedups(args.speedups, "--speedups")
    args.first_seed_only = _speedups(args.first_seed_only, "--first-seed-only")
    for name in (
        "threads",
        "table_samples",
        "table_rounds",
        "match_iterations",
        "rounds",
        "runs_per_round",
    ):
        if getattr(args, name) < 1:
            raise ValueError(
                f"`--{name.replace('_', '-')}` must be >= 1. "
                f"Received: {getattr(args, name)}"
            )
    return args, quality


def _speedups(text, name):
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = [0.0]
    if any(v <= 1 for v in values):
        raise ValueError(
            f"`{name}` must be a comma list of numbers > 1. Received: {text!r}"
        )
    return values


def main(argv=None):
    """Runs the comparison; returns the exit status (0, or 2 on bad input)."""
    try:
        args, quality = parse_args(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return _main(args, quality)
    except quality_cli.data_lib.DataMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _say(quality):
    def say(message):
        if not quality.quiet:
            print(message, flush=True)

    return say


def _main(args, q):
    start = time.perf_counter()
    say = _say(q)
    if not q.quick:
        quality_cli.data_lib.dataset_path(q.dataset, q.data_dir)
    with quality_cli._quiet_fd2():
        import keras  # noqa: F401

        import keras_neuronprune  # noqa: F401
    import warnings

    warnings.filterwarnings("ignore")
    from benchmarks.quality import training

    seeds = quality_cli._ints(q.seeds, "--seeds")
    data, dataset, fingerprint, classes = quality_cli.load_data(q)
    say(f"data      {dataset}: {len(data[0])} train, {len(data[2])} test")
    denses = {}
    for seed in seeds:
        denses[seed] = quality_cli.load_dense(
            q, q.models, seed, data, dataset, fingerprint, classes
        )
        meta = denses[seed][1]
        say(
            f"dense     {q.models} seed {seed}  acc {meta['accuracy']:.4f}  "
            f"(cache: {meta['cache']})"
        )
    table = _table(args, q, denses[seeds[0]][0], say)
    library = training.library_hash()
    table_hash = training.config_hash(table.to_dict())
    runs_dir = os.path.join(q.results_dir, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    rows, timed = [], []
    for seed in seeds:
        for speedup in args.speedups:
            if seed != seeds[0] and speedup in args.first_seed_only:
                continue
            for row, thin in _compare(
                args, q, denses[seed], seed, speedup, table, data, say,
                {"library": library, "table": table_hash},
            ):  # fmt: skip
                row["dataset"] = dataset
                rows.append(row)
                timed.append(thin)
    _time(args, q, denses[seeds[0]][0], rows, timed, say)
    meta = {
        "model": q.models,
        "width": q.width,
        "dataset": dataset,
        "criterion": args.criterion,
        "threads": args.threads,
        "seeds": seeds,
        "speedups": args.speedups,
        "first_seed_only": args.first_seed_only,
        "budget": {
            "epochs": q.epochs,
            "reg_epochs": q.reg_epochs,
            "finetune_epochs": q.finetune_epochs,
            "batch_size": q.batch_size,
            "finetune_lr": q.finetune_lr,
            "weight_decay": q.weight_decay,
            "augment": q.augment,
            "train_images": len(data[0]),
            "test_images": len(data[2]),
        },
        "table": {
            "dense_ms": table.dense_ms,
            "tiles": table.to_dict()["tiles"],
            "built_for": {
                k: v for k, v in table.built_for.items() if k != "layers"
            },
        },
        "timing": {
            "rounds": args.rounds,
            "runs_per_round": args.runs_per_round,
        },
        "dense_acc": {str(s): denses[s][1]["accuracy"] for s in seeds},
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    paths = write_outputs(rows, meta, q.results_dir)
    say(
        f"wrote {len(paths)} files to {q.results_dir} in "
        f"{time.perf_counter() - start:.0f}s"
    )
    return 0


def _table(args, q, dense, say):
    """The dense model's latency table: loaded if saved, else measured."""
    from tflite_bench.latency_table import LatencyTable
    from tflite_bench.latency_table import build_table

    path = os.path.join(q.results_dir, f"latency_table_t{args.threads}.json")
    if os.path.exists(path):
        table = LatencyTable.load(path, model=dense, threads=args.threads)
        say(f"table     {path} (dense {table.dense_ms:.3f} ms)")
        return table
    t0 = time.perf_counter()
    table = build_table(
        dense,
        threads=args.threads,
        tile=args.tile,
        samples=args.table_samples,
        work_dir=os.path.join(q.results_dir, "table_models"),
        rounds=args.table_rounds,
        log=lambda message: None,
    )
    table.save(path)
    say(
        f"table     built in {time.perf_counter() - t0:.0f}s: dense "
        f"{table.dense_ms:.3f} ms, tiles {table.to_dict()['tiles']} -> {path}"
    )
    return table


class _Planner:
    """Pruned architectures of one dense model, and their predictions."""

    def __init__(self, dense, table, criterion):
        from keras_neuronprune import channel_groups
        from keras_neuronprune import count_cost
        from keras_neuronprune.core.selection import ChannelSelector
        from keras_neuronprune.pruning._latency_target import LatencyModel

        self.dense, self.table, self.criterion = dense, table, criterion
        groups = [g for g in channel_groups(dense) if g.prunable]
        self.latency = LatencyModel(table.to_dict(), groups)
        self.plans = ChannelSelector().plans(groups)
        self.dense_flops = count_cost(dense).flops

    def plan(self, **target):
        """Prunes one-shot; returns a dict of the plan's numbers."""
        from benchmarks.latency_target import _pruned
        from keras_neuronprune import count_cost
        from keras_neuronprune.pruning._latency_target import kept_importance

        thin, counts, scores = _pruned(self.dense, self.criterion, **target)
        return {
            "thin": thin,
            "counts": {k: int(v) for k, v in counts.items()},
            "predicted_share": float(self.latency.share(counts)),
            "kept_importance": float(
                kept_importance(self.plans, scores, counts)
            ),
            "worst_group_importance": float(
                min(kept_importance([p], scores, counts) for p in self.plans)
            ),
            "flops_kept": count_cost(thin).flops / self.dense_flops,
        }

    def matching_flops(self, share, iterations=12):
        """The FLOPs-targeted plan whose predicted latency is `share`.

        Predicted latency falls (in steps) as the FLOPs ratio grows, so
        the ratio is bisected; the plan nearest to `share` is returned
        with its `flops_pruning_ratio`.
        """
        lo, hi = 0.0, 0.95
        best = None
        for _ in range(iterations):
            ratio = round(0.5 * (lo + hi), 5)
            # Spelled as `methods.run` will pass it (1 - kept FLOPs).
            plan = self.plan(flops_pruning_ratio=1.0 - (1.0 - ratio))
            plan["flops_pruning_ratio"] = ratio
            gap = plan["predicted_share"] - share
            if best is None or abs(gap) < abs(best[0]):
                best = (gap, plan)
            if abs(gap) <= MATCH_TOLERANCE * share or hi - lo < 1e-3:
                break
            if gap > 0:
                lo = ratio
            else:
                hi = ratio
        return best[1]


def _compare(args, q, dense_meta, seed, speedup, table, data, say, keys):
    """Both methods at one (seed, speed-up): yields (row, thin model)."""
    import keras_neuronprune as knp
    from benchmarks.quality import methods as methods_lib

    dense, meta = dense_meta
    planner = _Planner(dense, table, args.criterion)
    t0 = time.perf_counter()
    plans = {"latency": planner.plan(target_latency=1.0 / speedup,
                                     latency_table=table)}  # fmt: skip
    plans["flops"] = planner.matching_flops(
        plans["latency"]["predicted_share"], args.match_iterations
    )
    say(
        f"plan      x{speedup:g} seed {seed}: predicted x"
        f"{1 / plans['latency']['predicted_share']:.3f} (latency) / x"
        f"{1 / plans['flops']['predicted_share']:.3f} (flops, ratio "
        f"{plans['flops']['flops_pruning_ratio']:.4f}); FLOPs kept "
        f"{plans['latency']['flops_kept']:.3f} / "
        f"{plans['flops']['flops_kept']:.3f} "
        f"({time.perf_counter() - t0:.0f}s)"
    )
    ctx = methods_lib.Context(q, dense, meta, data, seed, knp.count_cost(dense))
    ctx.latency_table = table
    runs_dir = os.path.join(q.results_dir, "runs")
    for method in METHODS:
        plan = plans[method]
        if method == "latency":
            kind, value = "latency", 1.0 / speedup
        else:
            kind, value = "flops", 1.0 - plan["flops_pruning_ratio"]
        target = f"{method}{speedup:g}x"
        run_config = {
            "dense": meta["config_hash"],
            "method": args.criterion,
            "target": target,
            "kind": kind,
            "value": value,
            "reg_epochs": q.reg_epochs,
            "finetune_epochs": q.finetune_epochs,
            "finetune_lr": q.finetune_lr,
            "calibration_batches": q.calibration_batches,
            "test": len(data[2]),
            **keys,
        }
        tag = f"{q.models}_{args.criterion}_{target}_s{seed}"
        row, cached = quality_cli.cached_run(
            ctx, runs_dir, tag, run_config, args.criterion, kind, value,
            {"model": q.models, "target": target, "seed": seed},
        )  # fmt: skip
        out = {k: v for k, v in row.items() if k != "histogram"}
        # The timed architecture is the plan's: it must be the trained one.
        out["counts_match"] = row.get("kept_counts") == plan["counts"]
        if not out["counts_match"]:
            say(f"WARNING   {tag}: fine-tuned counts differ from the plan")
        out.update(
            {
                "method": method,
                "criterion": args.criterion,
                "asked_speedup": speedup,
                "predicted_share": plan["predicted_share"],
                "predicted_speedup": 1.0 / plan["predicted_share"],
                "kept_importance": plan["kept_importance"],
                "worst_group_importance": plan["worst_group_importance"],
                "flops_pruning_ratio": plan.get("flops_pruning_ratio"),
            }
        )
        acc = row["acc_pruned"]
        say(
            f"{method:<9} x{speedup:<4g} seed {seed}  FLOPs "
            f"{row['flops_kept']:.3f}  acc {acc:.4f} -> "
            f"{row['acc_final']:.4f}  {row['wall_s']:6.1f}s"
            + ("  (done before, skipped)" if cached else "")
        )
        yield out, plan["thin"]


def _time(args, q, dense, rows, thins, say):
    """Exports dense + every pruned model, times them interleaved."""
    from keras_neuronprune.export import tflite
    from tflite_bench.base_benchmark import time_interleaved

    folder = os.path.join(q.results_dir, "models")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, model in [("dense", dense)] + [
        (f"{r['method']}_x{r['asked_speedup']:g}_s{r['seed']}", m)
        for r, m in zip(rows, thins)
    ]:
        path = os.path.join(folder, f"{name}.tflite")
        tflite(model, path, parity_samples=1)
        paths.append(path)
    t0 = time.perf_counter()
    stats = time_interleaved(
        paths,
        args.threads,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
    )
    dense_ms = stats[0].median_ms
    for row, s in zip(rows, stats[1:]):
        row["median_ms"] = s.median_ms
        row["p90_ms"] = s.p90_ms
        row["dense_ms"] = dense_ms
        row["measured_speedup"] = dense_ms / s.median_ms
    say(
        f"timed     {len(paths)} models at {args.threads} thread(s) in "
        f"{time.perf_counter() - t0:.0f}s: dense {dense_ms:.3f} ms"
    )


# ----------------------------------------------------------------------
# Outputs.


def write_outputs(rows, meta, results_dir):
    """Writes latency_quality.json / .md and latency_vs_accuracy.png."""
    os.makedirs(results_dir, exist_ok=True)
    paths = [os.path.join(results_dir, "latency_quality.json")]
    with open(paths[-1], "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=float)
    paths.append(os.path.join(results_dir, "latency_quality.md"))
    with open(paths[-1], "w") as f:
        f.write(markdown(rows, meta))
    paths.append(os.path.join(results_dir, "latency_vs_accuracy.png"))
    plot(rows, meta, paths[-1])
    return paths


def _groups(rows):
    out = {}
    for r in rows:
        out.setdefault((r["asked_speedup"], r["method"]), []).append(r)
    return out


def _mean_sd(values, scale=1.0, digits=2):
    arr = np.asarray(values, "float64") * scale
    if len(arr) == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def markdown(rows, meta):
    """The comparison table and the paired accuracy differences."""
    b = meta["budget"]
    dense = list(meta["dense_acc"].values())
    few = ", ".join(f"{s:g}x" for s in meta["first_seed_only"])
    lines = [
        f"## {meta['model']} (width {meta['width']:g}) on {meta['dataset']}: "
        f"{meta['criterion']} criterion, {meta['threads']} thread(s)",
        "",
        f"Dense: {_mean_sd(dense, 100)}% ({len(dense)} seed(s)), "
        f"{meta['table']['dense_ms']:.3f} ms in the table. Budget: "
        f"{b['reg_epochs'] + b['finetune_epochs']} fine-tune epoch(s) from "
        f"the dense checkpoint ({b['epochs']} epochs), SGD Nesterov lr "
        f"{b['finetune_lr']} cosine, weight decay {b['weight_decay']}, "
        f"batch {b['batch_size']}, {b['train_images']} training / "
        f"{b['test_images']} test images. Seeds {meta['seeds']}"
        + (
            f" (speed-ups {few} with the first seed only)"
            if meta["first_seed_only"]
            else ""
        )
        + ". Mean ± sample sd over seeds.",
        "",
        "| asked | method | n | predicted | measured speed-up | median ms "
        "| kept importance (mean / worst) | FLOPs kept | before FT "
        "| after FT (%) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = _groups(rows)
    for (speedup, method), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1]))
    ):
        lines.append(
            f"| {speedup:g}x | {method} | {len(runs)} "
            f"| {_mean_sd([r['predicted_speedup'] for r in runs])}x "
            f"| {_mean_sd([r['measured_speedup'] for r in runs])}x "
            f"| {_mean_sd([r['median_ms'] for r in runs], digits=3)} "
            f"| {_mean_sd([r['kept_importance'] for r in runs], digits=3)} / "
            f"{_mean_sd([r['worst_group_importance'] for r in runs], digits=3)}"
            f" | {_mean_sd([r['flops_kept'] for r in runs], digits=3)} "
            f"| {_mean_sd([r['acc_pruned'] for r in runs], 100)} "
            f"| {_mean_sd([r['acc_final'] for r in runs], 100)} |"
        )
    lines += [
        "",
        "| asked | Δ accuracy latency − flops (points, per seed) | mean "
        "| measured ms latency / flops |",
        "|---|---|---|---|",
    ]
    for speedup, delta, ms in paired_deltas(rows):
        lines.append(
            f"| {speedup:g}x | {', '.join(f'{d:+.2f}' for d in delta)} "
            f"| {np.mean(delta):+.2f} | {ms[0]:.3f} / {ms[1]:.3f} |"
        )
    return "\n".join(lines) + "\n"


def paired_deltas(rows):
    """Per speed-up: (speed-up, [latency − flops accuracy per seed, in
    points], (mean ms latency, mean ms flops))."""
    by = {(r["asked_speedup"], r["method"], r["seed"]): r for r in rows}
    out = []
    for speedup in sorted({r["asked_speedup"] for r in rows}):
        seeds = sorted(
            s for (sp, m, s) in by if sp == speedup and m == "latency"
        )
        pairs = [
            (by[(speedup, "latency", s)], by[(speedup, "flops", s)])
            for s in seeds
            if (speedup, "flops", s) in by
        ]
        if not pairs:
            continue
        out.append(
            (
                speedup,
                [100 * (a["acc_final"] - b["acc_final"]) for a, b in pairs],
                tuple(
                    float(np.mean([p[i]["median_ms"] for p in pairs]))
                    for i in (0, 1)
                ),
            )
        )
    return out


def plot(rows, meta, path):
    """Measured latency (x) vs accuracy (y), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    groups = _groups(rows)
    colours = {"latency": "tab:blue", "flops": "tab:orange"}
    labels = {
        "latency": "target_latency (table knapsack)",
        "flops": "flops_pruning_ratio (same predicted latency)",
    }
    for method in METHODS:
        speedups = sorted(s for s, m in groups if m == method)
        if not speedups:
            continue
        xs, ys, es = [], [], []
        for s in speedups:
            runs = groups[(s, method)]
            ax.plot(
                [r["median_ms"] for r in runs],
                [100 * r["acc_final"] for r in runs],
                ".", color=colours[method], alpha=0.35,
            )  # fmt: skip
            acc = 100 * np.asarray([r["acc_final"] for r in runs])
            xs.append(float(np.mean([r["median_ms"] for r in runs])))
            ys.append(float(acc.mean()))
            es.append(float(acc.std(ddof=1)) if len(acc) > 1 else 0.0)
        ax.errorbar(
            xs, ys, yerr=es, fmt="o-", color=colours[method],
            label=labels[method], capsize=3,
        )  # fmt: skip
        for x, y, s in zip(xs, ys, speedups):
            ax.annotate(
                f"{s:g}x", (x, y), textcoords="offset points",
                xytext=(4, -10 if method == "flops" else 6), fontsize=7,
                color=colours[method],
            )  # fmt: skip
    dense_ms = rows[0]["dense_ms"] if rows else meta["table"]["dense_ms"]
    dense = 100 * np.mean(list(meta["dense_acc"].values()))
    ax.plot(dense_ms, dense, "k*", markersize=12, label="dense")
    ax.set_xlabel(
        f"measured latency (ms, LiteRT / XNNPACK, {meta['threads']} threads)"
    )
    ax.set_ylabel("test accuracy after fine-tuning (%)")
    ax.set_title(
        f"{meta['model']} x{meta['width']:g} on {meta['dataset']}: "
        f"{meta['criterion']}, accuracy at equal latency"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
