"""Speed of graph analysis + thinning, next to `keras.models.clone_model`.

For each keras.applications model (weights=None, default input size) this
times, in the same process and interleaved:

- `keras.models.clone_model(model)`: the reference, a plain rebuild;
- `keras_neuronprune.channel_groups(model)`: the channel dependency graph;
- `keras_neuronprune.thin_model(model, keep)` with
  `keep = keras_neuronprune.uniform_keep(model, 0.5)` (computed once, not
  timed): the physical rewrite.

Each measurement is repeated `--repeats` times (the order of clone and
prune alternates between repeats) and the median is reported. The goal is
`channel_groups + thin_model <= 2 x clone_model`.

Run (from the repository root):

    python -m benchmarks.graph_speed                      # all six models
    python -m benchmarks.graph_speed --models ResNet50 --repeats 5
    python -m benchmarks.graph_speed --profile MobileNetV2  # cProfile

Writes a markdown table to stdout and JSON to
`results/graph_speed/graph_speed.json` (`--out` to change).
"""

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_neuronprune  # noqa: E402

DEFAULT_MODELS = (
    "ResNet50",
    "MobileNetV2",
    "EfficientNetB0",
    "DenseNet121",
    "ConvNeXtTiny",
    "EfficientNetV2L",
)
GOAL = 2.0


def _timed(fn, *args):
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def _build(name):
    return getattr(keras.applications, name)(weights=None)


def bench_model(name, repeats, ratio=0.5):
    """Times clone_model, channel_groups and thin_model on one model."""
    model = _build(name)
    groups = keras_neuronprune.channel_groups(model)
    keep = keras_neuronprune.uniform_keep(model, ratio, groups=groups)
    times = {"clone_model": [], "channel_groups": [], "thin_model": []}
    thin_params = None
    for i in range(repeats):
        steps = ["clone", "prune"] if i % 2 == 0 else ["prune", "clone"]
        for step in steps:
            if step == "clone":
                t, clone = _timed(keras.models.clone_model, model)
                times["clone_model"].append(t)
                del clone
            else:
                t, _ = _timed(keras_neuronprune.channel_groups, model)
                times["channel_groups"].append(t)
                t, (thin, _) = _timed(keras_neuronprune.thin_model, model, keep)
                times["thin_model"].append(t)
                thin_params = thin.count_params()
                del thin
    med = {k: statistics.median(v) for k, v in times.items()}
    prune = zip(times["channel_groups"], times["thin_model"])
    med["groups_plus_thin"] = statistics.median(g + t for g, t in prune)
    result = {
        "model": name,
        "layers": len(model.layers),
        "params": model.count_params(),
        "thin_params": thin_params,
        "prunable_groups": sum(1 for g in groups if g.prunable),
        "groups": len(groups),
        "repeats": repeats,
        "times_s": times,
        "median_s": med,
        "ratio_to_clone": med["groups_plus_thin"] / med["clone_model"],
    }
    keras.backend.clear_session()
    gc.collect()
    return result


def markdown_table(results):
    lines = [
        "| model | layers | params | params after 50% | clone_model (s) "
        "| channel_groups (s) | thin_model (s) | groups + thin (s) "
        "| ratio to clone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m = r["median_s"]
        flag = "" if r["ratio_to_clone"] <= GOAL else " (> 2x)"
        lines.append(
            f"| {r['model']} | {r['layers']} | {r['params'] / 1e6:.1f}M "
            f"| {r['thin_params'] / 1e6:.1f}M | {m['clone_model']:.2f} "
            f"| {m['channel_groups']:.2f} | {m['thin_model']:.2f} "
            f"| {m['groups_plus_thin']:.2f} "
            f"| {r['ratio_to_clone']:.2f}x{flag} |"
        )
    return "\n".join(lines)


def profile_model(name, top=30, ratio=0.5):
    """cProfiles channel_groups + thin_model once; returns the stats text."""
    model = _build(name)
    keep = keras_neuronprune.uniform_keep(model, ratio)
    profiler = cProfile.Profile()
    profiler.enable()
    keras_neuronprune.channel_groups(model)
    keras_neuronprune.thin_model(model, keep)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def machine_info():
    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "platform": platform.platform(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pruning-ratio",
        "--ratio",
        dest="pruning_ratio",
        type=float,
        default=0.5,
        help="share of each group's channels removed (--ratio: old name)",
    )
    parser.add_argument("--out", default=os.path.join("results", "graph_speed"))
    parser.add_argument(
        "--profile",
        metavar="MODEL",
        help="cProfile channel_groups + thin_model on MODEL instead",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1. Received: {args.repeats}")
    os.makedirs(args.out, exist_ok=True)

    if args.profile:
        text = profile_model(args.profile, ratio=args.pruning_ratio)
        path = os.path.join(args.out, f"profile_{args.profile}.txt")
        with open(path, "w") as f:
            f.write(text)
        print(text)
        print(f"written: {path}")
        return 0

    results = []
    for name in args.models:
        print(f"[graph_speed] {name} ...", file=sys.stderr, flush=True)
        results.append(bench_model(name, args.repeats, args.pruning_ratio))
        print(markdown_table(results[-1:]).splitlines()[-1], file=sys.stderr)
    table = markdown_table(results)
    print(table)
    payload = {
        "command": "python -m benchmarks.graph_speed "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "goal_ratio": GOAL,
        "results": results,
    }
    path = os.path.join(args.out, "graph_speed.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    with open(os.path.join(args.out, "graph_speed.md"), "w") as f:
        f.write(table + "\n")
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
