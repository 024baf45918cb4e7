"""Channel-width sweep: how does one layer's latency step with its width?

Pruning removes channels; the runtime's kernels process channels in tiles
(SIMD vectors of 4 floats on ARM NEON, 8 on AVX2, 16 on AVX-512, and
micro-kernel tiles of one or two vectors). A layer whose width is not a
multiple of the tile pays for the whole tile, so its latency falls in steps,
not in proportion to its FLOPs. This sweep measures those steps on the
machine it runs on, for the layer kinds of mobile CNNs, and suggests the
`round_to` that keeps widths on the steps:

```
python -m tflite_bench.widths --threads 2 --resolution 112 \\
    --channels 4 8 12 16 24 32 48 64 --results-dir results/tflite_bench_widths
```

Every model is a single layer (`c` channels in, `c` out, batch 1, float32),
exported with `keras_neuronprune.export.tflite` and timed interleaved with
all others. `ns_per_mac` is latency divided by the layer's multiply-adds:
flat means the time follows the FLOPs; rising towards small widths means
fixed per-tile and memory costs dominate.
"""

import argparse
import math
import os
import platform
import time

from tflite_bench import report
from tflite_bench._args import int_at_least
from tflite_bench._args import print_results

KINDS = ("pointwise", "depthwise", "conv3x3")
DEFAULT_CHANNELS = (4, 8, 12, 16, 20, 24, 32, 40, 48, 64)
CANDIDATE_ROUND_TOS = (1, 2, 4, 8, 16, 32)

CSV_COLUMNS = (
    "kind",
    "channels",
    "resolution",
    "threads",
    "macs",
    "median_ms",
    "p90_ms",
    "ns_per_mac",
)


def layer_model(kind, channels, resolution):
    """A one-layer Keras model of `kind` with `channels` in and out.

    Args:
        kind: "pointwise" (1x1 Conv2D), "depthwise" (3x3 DepthwiseConv2D)
            or "conv3x3" (3x3 Conv2D), all with padding "same".
        channels: input and output channels.
        resolution: input height and width.

    Returns:
        (keras.Model, multiply-adds of the layer)
    """
    import keras

    if kind not in KINDS:
        raise ValueError(
            f"`kind` must be one of {KINDS}. Received: kind={kind!r}"
        )
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(
            "`channels` must be a positive int. Received: "
            f"channels={channels!r}"
        )
    inputs = keras.Input((resolution, resolution, channels), name="x")
    pixels = resolution * resolution
    if kind == "pointwise":
        layer = keras.layers.Conv2D(channels, 1, name=kind)
        macs = pixels * channels * channels
    elif kind == "depthwise":
        layer = keras.layers.DepthwiseConv2D(3, padding="same", name=kind)
        macs = pixels * channels * 9
    else:
        layer = keras.layers.Conv2D(channels, 3, padding="same", name=kind)
        macs = pixels * channels * channels * 9
    model = keras.Model(inputs, layer(inputs), name=f"{kind}_{channels}")
    return model, macs


def suggest_round_to(rows, tolerance=0.1):
    """Each layer kind's channel tile: the widths rounding up to is free.

    For each candidate `r`, every measured width that is not a multiple of
    `r` is compared with the next multiple of `r` that was measured:
    rounding up is free when that wider layer is at most `tolerance`
    slower. The suggestion for a kind is the largest candidate for which
    rounding up was free at every width (the runtime's channel tile for
    that kind; 1 when wider is always slower, i.e. time follows the
    width).

    Args:
        rows: sweep rows (`kind`, `channels`, `threads`, `median_ms`).
        tolerance: relative slack for "as fast as".

    Returns:
        dict threads -> {kind: suggested `round_to`}.
    """
    suggestion = {}
    for threads in sorted({r["threads"] for r in rows}):
        per_kind = {}
        kinds = {r["kind"] for r in rows if r["threads"] == threads}
        for kind in sorted(kinds):
            times = {
                r["channels"]: r["median_ms"]
                for r in rows
                if r["kind"] == kind and r["threads"] == threads
            }
            best = 1
            for r_to in CANDIDATE_ROUND_TOS[1:]:
                pairs = [
                    (t, times[math.ceil(c / r_to) * r_to])
                    for c, t in times.items()
                    if c % r_to and math.ceil(c / r_to) * r_to in times
                ]
                if pairs and all(up <= t * (1 + tolerance) for t, up in pairs):
                    best = r_to
            per_kind[kind] = best
        suggestion[threads] = per_kind
    return suggestion


def sweep(
    kinds=KINDS,
    channels=DEFAULT_CHANNELS,
    resolution=112,
    threads=(2,),
    work_dir="results/tflite_bench_widths/models",
    warmup=5,
    rounds=10,
    runs_per_round=10,
    log=print,
):
    """Exports and times every (kind, width); returns result rows."""
    import keras

    from keras_neuronprune.export import tflite
    from tflite_bench.base_benchmark import time_interleaved

    os.makedirs(work_dir, exist_ok=True)
    entries = []
    for kind in kinds:
        for c in channels:
            model, macs = layer_model(kind, int(c), resolution)
            path = os.path.join(work_dir, f"{kind}_{c}_{resolution}.tflite")
            tflite(model, path, parity_samples=1)
            entries.append({"kind": kind, "channels": int(c), "macs": macs})
            entries[-1]["path"] = path
        log(f"  exported {kind}: widths {list(channels)}")
        keras.backend.clear_session()
    rows = []
    for t in threads:
        stats = time_interleaved(
            [e["path"] for e in entries],
            t,
            warmup=warmup,
            rounds=rounds,
            runs_per_round=runs_per_round,
        )
        for e, s in zip(entries, stats):
            rows.append(
                {
                    "kind": e["kind"],
                    "channels": e["channels"],
                    "resolution": resolution,
                    "threads": t,
                    "macs": e["macs"],
                    "median_ms": s.median_ms,
                    "p90_ms": s.p90_ms,
                    "ns_per_mac": 1e6 * s.median_ms / e["macs"],
                }
            )
        log(f"  timed {len(entries)} layers at {t} thread(s)")
    return rows


def markdown(rows, meta):
    """One table per thread count: kinds as columns, widths as rows."""
    lines = ["# tflite_bench channel-width sweep", ""]
    lines += [
        f"- machine: {meta.get('platform')}, {meta.get('cpu_count')} CPUs "
        f"({meta.get('processor')}); LiteRT interpreter (XNNPACK), batch 1",
        f"- one layer, c channels in and out, "
        f"{meta['resolution']}x{meta['resolution']} input; all layers timed "
        f"interleaved; warm-up {meta['warmup']}, {meta['rounds']} rounds x "
        f"{meta['runs_per_round']} runs",
        "- channel tile per kind (widths round up to a multiple of it "
        "for free; 1 = time follows the width): "
        + "; ".join(
            f"{t} thread(s): "
            + ", ".join(f"{k} {r}" for k, r in per_kind.items())
            for t, per_kind in meta["suggestion"].items()
        ),
        "",
    ]
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    for t in sorted({r["threads"] for r in rows}):
        lines += [f"## {t} thread(s): median ms (ns per MAC)", ""]
        lines.append("| channels | " + " | ".join(kinds) + " |")
        lines.append("|---|" + "---|" * len(kinds))
        widths = sorted({r["channels"] for r in rows})
        for c in widths:
            cells = [str(c)]
            for k in kinds:
                r = next(
                    (
                        r
                        for r in rows
                        if r["kind"] == k
                        and r["channels"] == c
                        and r["threads"] == t
                    ),
                    None,
                )
                cells.append(
                    "-"
                    if r is None
                    else f"{r['median_ms']:.3f} ({r['ns_per_mac']:.3f})"
                )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(rows, path):
    """Median ms vs channels, one panel per kind, one line per thread count.

    Returns False when matplotlib is not installed.
    """
    plt = report.pyplot()
    if plt is None or not rows:
        return False
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    fig, axes = plt.subplots(
        1, len(kinds), figsize=(4.5 * len(kinds), 3.8), squeeze=False
    )
    for ax, kind in zip(axes[0], kinds):
        for t in sorted({r["threads"] for r in rows}):
            pts = sorted(
                (r["channels"], r["median_ms"])
                for r in rows
                if r["kind"] == kind and r["threads"] == t
            )
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=f"{t} thread(s)",
            )
        ax.set_xlabel("channels (in = out)")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(kind)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return report.save_figure(fig, path)


def write_all(rows, meta, results_dir):
    """Writes widths.{csv,json,md,png}; returns {kind: path}."""
    paths = report.artifact_paths(results_dir, "widths", "widths.png")
    return report.write_artifacts(
        rows, meta, paths, CSV_COLUMNS, markdown, plot
    )


_positive_ints = int_at_least(1)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tflite_bench.widths",
        description=(
            "Latency of single layers vs channel width on the LiteRT "
            "interpreter (XNNPACK); finds each layer kind's channel tile "
            "(the round_to that is free) on this machine."
        ),
    )
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument(
        "--channels",
        nargs="+",
        type=_positive_ints,
        default=list(DEFAULT_CHANNELS),
    )
    p.add_argument("--resolution", type=_positive_ints, default=112)
    p.add_argument("--threads", nargs="+", type=_positive_ints, default=[2])
    p.add_argument("--warmup", type=_positive_ints, default=5)
    p.add_argument("--rounds", type=_positive_ints, default=10)
    p.add_argument("--runs-per-round", type=_positive_ints, default=10)
    p.add_argument("--results-dir", default="results/tflite_bench_widths")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    started = time.time()
    rows = sweep(
        kinds=tuple(args.kinds),
        channels=tuple(sorted(set(args.channels))),
        resolution=args.resolution,
        threads=tuple(args.threads),
        work_dir=os.path.join(args.results_dir, "models"),
        warmup=args.warmup,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
    )
    meta = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "resolution": args.resolution,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "runs_per_round": args.runs_per_round,
        "elapsed_s": round(time.time() - started, 1),
        "suggestion": suggest_round_to(rows),
    }
    paths = write_all(rows, meta, args.results_dir)
    print_results(markdown(rows, meta), paths)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
