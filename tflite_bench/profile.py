"""Segment profiler: where along the network does a pruned model lose speed?

A whole-model benchmark says *that* a pruned model reaches only part of its
FLOP reduction in measured speed; this tool says *where*. The network is
cut into segments at "cut points" (tensors every later layer depends on
alone, e.g. the output of a residual block's Add). For each chosen cut the
prefix model `keras.Model(inputs, cut_tensor)` of the dense and of the
pruned model is exported to .tflite, all prefixes are timed in one
interleaved run (so they share the machine load), and consecutive medians
are differenced into per-segment latencies, set beside the per-segment
FLOPs from `keras_neuronprune.count_cost`.

```
python -m tflite_bench.profile --model mobilenetv2 --ratio 0.75 \\
    --round-to 8 --threads 1 2 --results-dir results/tflite_bench_profile
```

Segment 1 also carries the interpreter's fixed per-invoke overhead (it is
the whole first prefix). Differences of medians are noisy for segments of
a few microseconds; they are reported as measured, and efficiency is left
empty when a difference is not positive.
"""

import argparse
import os
import time

from tflite_bench._args import int_at_least
from tflite_bench._args import open_unit_float
from tflite_bench._args import print_results
from tflite_bench.profile_report import CSV_COLUMNS  # noqa: F401
from tflite_bench.profile_report import markdown
from tflite_bench.profile_report import write_all
from tflite_bench.segments import _cut_table
from tflite_bench.segments import _segment_stats
from tflite_bench.segments import choose_segments
from tflite_bench.segments import cut_points

# Profiling.


def _prefix_model(model, tensor, name):
    import keras

    if len(model.outputs) == 1 and tensor is model.outputs[0]:
        return model
    return keras.Model(model.inputs, tensor, name=f"{model.name}_to_{name}")


def _check_cuts(cuts, dense, pruned):
    if isinstance(cuts, str) or not cuts:
        raise ValueError(
            "`cuts` must be a non-empty list of layer names. Received: "
            f"cuts={cuts!r}"
        )
    for model, label in ((dense, "dense"), (pruned, "pruned")):
        if len(model.outputs) != 1:
            raise ValueError(
                f"The {label} model must have one output to be profiled. "
                f"Received: {len(model.outputs)} outputs"
            )
    _, dense_cuts = _cut_table(dense)
    _, pruned_cuts = _cut_table(pruned)
    for name in cuts:
        if name not in dense_cuts:
            raise ValueError(
                "`cuts` must name cut points of the dense model (see "
                f"`cut_points`). Received: {name!r}"
            )
        if name not in pruned_cuts:
            raise ValueError(
                f"Cut {name!r} is not a cut point of the pruned model; "
                "dense and pruned models must have the same graph."
            )
    return sorted(set(cuts), key=lambda n: dense_cuts[n][0])


def _ratio_or_none(num, den):
    return num / den if num and den and num > 0 and den > 0 else None


def segment_rows(segments, dense_stats, pruned_stats, threads):
    """Differences prefix timings into per-segment rows.

    Args:
        segments: list of dicts with "first_layer", "last_layer",
            "dense_flops", "pruned_flops" and the optional extras (shapes,
            channel ranges), one per segment in order.
        dense_stats, pruned_stats: `LatencyStats` of the prefix models, one
            per segment (prefix i ends at segment i's last layer).
        threads: the thread count of these timings.

    Returns:
        A list of row dicts (see `CSV_COLUMNS`). Differences that come out
        <= 0 (timing noise on tiny segments) are kept as measured; their
        speed-up and efficiency are None.
    """
    pruned_total = pruned_stats[-1].median_ms if pruned_stats else None
    rows = []
    prev = (0.0, 0.0, 0.0, 0.0)
    for i, (seg, d, p) in enumerate(zip(segments, dense_stats, pruned_stats)):
        d_cpu = d.cpu_median_ms
        p_cpu = p.cpu_median_ms
        dense_ms = d.median_ms - prev[0]
        pruned_ms = p.median_ms - prev[1]
        row = dict(seg)
        row["threads"] = threads
        row["segment"] = i + 1
        row["dense_ms"] = dense_ms
        row["pruned_ms"] = pruned_ms
        row["dense_prefix_ms"] = d.median_ms
        row["pruned_prefix_ms"] = p.median_ms
        row["dense_cpu_ms"] = None if d_cpu is None else d_cpu - prev[2]
        row["pruned_cpu_ms"] = None if p_cpu is None else p_cpu - prev[3]
        row["flop_reduction"] = _ratio_or_none(
            seg["dense_flops"], seg["pruned_flops"]
        )
        row["speedup"] = (
            dense_ms / pruned_ms if dense_ms > 0 and pruned_ms > 0 else None
        )
        row["efficiency"] = (
            row["speedup"] / row["flop_reduction"]
            if row["speedup"] is not None and row["flop_reduction"]
            else None
        )
        row["pruned_share"] = (
            pruned_ms / pruned_total if pruned_total and pruned_total > 0
            else None
        )  # fmt: skip
        rows.append(row)
        prev = (d.median_ms, p.median_ms, d_cpu or 0.0, p_cpu or 0.0)
    return rows


def profile_segments(
    dense,
    pruned,
    cuts,
    threads=(2,),
    work_dir="results/tflite_bench_profile/models",
    warmup=3,
    rounds=10,
    runs_per_round=10,
    log=print,
):
    """Times the segments between `cuts` in a dense and a pruned model.

    For every cut the prefix models (model input -> cut tensor) of both
    models are exported with `keras_neuronprune.export.tflite` (which also
    checks their numerics), then for each thread count all prefixes of
    both models are timed in one `time_interleaved` run and consecutive
    medians are differenced.

    Args:
        dense: the dense functional Keras model (single output).
        pruned: its pruned version with the same layer names and graph
            (e.g. from `keras_neuronprune.thin_model`).
        cuts: cut names of the dense model (`cut_points` /
            `choose_segments`); sorted into graph order.
        threads: interpreter thread counts.
        work_dir: folder for the exported prefix .tflite files.
        warmup, rounds, runs_per_round: see
            `tflite_bench.base_benchmark.time_interleaved`.
        log: progress printer.

    Returns:
        A list of row dicts, one per segment and thread count (keys in
        `CSV_COLUMNS`), segments in graph order within each thread count.

    Raises:
        ValueError: bad `cuts` or thread counts, or a multi-output model.
    """
    from keras_neuronprune.export import tflite
    from tflite_bench.base_benchmark import time_interleaved

    threads = tuple(threads)
    if not threads or any(
        not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in threads
    ):
        raise ValueError(
            f"`threads` must be positive ints. Received: threads={threads!r}"
        )
    cuts = _check_cuts(cuts, dense, pruned)
    _, dense_seg, dense_cuts = _segment_stats(dense, cuts)
    _, pruned_seg, pruned_cuts = _segment_stats(pruned, cuts)
    segments = []
    for i, name in enumerate(cuts):
        d, p = dense_seg[i], pruned_seg[i]
        segments.append(
            {
                "first_layer": d["first_layer"],
                "last_layer": name,
                "cut_shape_dense": d["shape"],
                "cut_shape_pruned": p["shape"],
                "dense_flops": d["flops"],
                "pruned_flops": p["flops"],
                "pruned_min_channels": min(p["channels"], default=None),
                "pruned_max_channels": max(p["channels"], default=None),
                "dense_min_channels": min(d["channels"], default=None),
                "dense_max_channels": max(d["channels"], default=None),
                "conv_layers": len(p["channels"]),
            }
        )

    os.makedirs(work_dir, exist_ok=True)
    paths = {"dense": [], "pruned": []}
    for label, model, table in (
        ("dense", dense, dense_cuts),
        ("pruned", pruned, pruned_cuts),
    ):
        for i, name in enumerate(cuts):
            t0 = time.time()
            prefix = _prefix_model(model, table[name][1], name)
            path = os.path.join(work_dir, f"{label}_{i + 1:02d}_{name}.tflite")
            result = tflite(prefix, path, parity_samples=1)
            paths[label].append(str(result.path))
            flops = segments[i][f"{label}_flops"]
            log(
                f"  exported {label} {i + 1}/{len(cuts)} up to {name} "
                f"({table[name][1].shape[1:]}): segment "
                f"{flops / 1e6:.2f} MFLOPs, parity max|diff|="
                f"{result.parity.max_abs_diff:.1e} ({time.time() - t0:.1f}s)"
            )

    rows = []
    all_paths = paths["dense"] + paths["pruned"]
    n = len(cuts)
    for t in threads:
        t0 = time.time()
        stats = time_interleaved(
            all_paths,
            t,
            warmup=warmup,
            rounds=rounds,
            runs_per_round=runs_per_round,
        )
        rows.extend(segment_rows(segments, stats[:n], stats[n:], t))
        log(
            f"  threads={t}: whole model dense {stats[n - 1].median_ms:.2f}"
            f" ms, pruned {stats[-1].median_ms:.2f} ms "
            f"({time.time() - t0:.1f}s)"
        )
    return rows


# Command line.


_positive_int = int_at_least(1)
_non_negative_int = int_at_least(0)
_ratio = open_unit_float


def _model_name(text):
    from tflite_bench.models import FULL_SUITE

    if text.endswith(".keras"):
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(
                f"no such .keras file. Received: {text!r}"
            )
        return text
    if text not in FULL_SUITE:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(FULL_SUITE)} or a .keras file. "
            f"Received: {text!r}"
        )
    return text


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tflite_bench.profile",
        description=(
            "Per-segment latency of a dense model and its uniformly pruned "
            "version on the LiteRT interpreter (XNNPACK): where does the "
            "pruned model lose speed against its FLOP reduction?"
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        type=_model_name,
        help="suite model (mobilenetv2 resnet50 efficientnetb0 resnet20) "
        "or a .keras file",
    )
    p.add_argument("--ratio", type=_ratio, default=0.75)
    p.add_argument("--round-to", type=_positive_int, default=8)
    p.add_argument("--threads", nargs="+", type=_positive_int, default=[2])
    p.add_argument("--max-segments", type=_positive_int, default=16)
    p.add_argument(
        "--cuts",
        nargs="+",
        help="explicit cut layer names instead of --max-segments "
        "(see `cut_points`)",
    )
    p.add_argument("--warmup", type=_non_negative_int, default=3)
    p.add_argument("--rounds", type=_positive_int, default=10)
    p.add_argument("--runs-per-round", type=_positive_int, default=10)
    p.add_argument("--resolution", type=_positive_int, default=None)
    p.add_argument(
        "--quick",
        action="store_true",
        help="small suite models (as in `python -m tflite_bench --quick`)",
    )
    p.add_argument("--results-dir", default="results/tflite_bench_profile")
    return p


def run(args, log=print):
    """Builds, prunes, profiles and writes; returns (rows, meta, paths)."""
    import keras

    from keras_neuronprune import count_cost
    from keras_neuronprune import thin_model
    from keras_neuronprune import uniform_keep
    from tflite_bench import report
    from tflite_bench import suite

    started = time.time()
    config = suite.BenchConfig(
        models=(args.model,),
        ratios=(args.ratio,),
        round_tos=(args.round_to,),
        threads=tuple(args.threads),
        warmup=args.warmup,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
        resolution=args.resolution,
        quick=args.quick,
        results_dir=args.results_dir,
    )
    family, desc, dense = suite.load_family(args.model, config)
    log(f"[{family}] {desc}")
    keep = uniform_keep(dense, args.ratio, round_to=args.round_to)
    pruned, _ = thin_model(dense, keep)
    if args.cuts:
        cuts = list(args.cuts)
    else:
        cuts = choose_segments(dense, args.max_segments)
    log(
        f"  {len(cut_points(dense))} cut points, profiling {len(cuts)} "
        f"segments; exporting {2 * len(cuts)} prefix models"
    )
    rows = profile_segments(
        dense,
        pruned,
        cuts,
        threads=args.threads,
        work_dir=os.path.join(args.results_dir, "models", family),
        warmup=args.warmup,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
        log=log,
    )
    meta = report.environment(config, time.time() - started)
    meta.update(
        {
            "family": family,
            "description": desc,
            "ratio": args.ratio,
            "round_to": args.round_to,
            "dense_flops": int(count_cost(dense).flops),
            "pruned_flops": int(count_cost(pruned).flops),
            "segments": len(cuts),
            "cuts": cuts,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "runs_per_round": args.runs_per_round,
        }
    )
    paths = write_all(rows, meta, args.results_dir)
    keras.backend.clear_session()
    return rows, meta, paths


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rows, meta, paths = run(args)
    except ValueError as e:
        if "`cuts`" not in str(e):
            raise
        parser.error(f"argument --cuts: {e}")
    print_results(markdown(rows, meta), paths)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
