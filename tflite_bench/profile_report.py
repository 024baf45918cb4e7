"""Markdown / CSV / JSON / plot writers of the segment profiler."""

from tflite_bench import report
from tflite_bench.report import fmt

CSV_COLUMNS = (
    "threads",
    "segment",
    "first_layer",
    "last_layer",
    "cut_shape_dense",
    "cut_shape_pruned",
    "dense_flops",
    "pruned_flops",
    "flop_reduction",
    "dense_ms",
    "pruned_ms",
    "speedup",
    "efficiency",
    "pruned_share",
    "dense_cpu_ms",
    "pruned_cpu_ms",
    "dense_prefix_ms",
    "pruned_prefix_ms",
    "pruned_min_channels",
    "pruned_max_channels",
    "dense_min_channels",
    "dense_max_channels",
    "conv_layers",
)


def _channels(lo, hi):
    if lo is None:
        return "-"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def markdown(rows, meta):
    """The profile as one markdown table per thread count."""
    lines = ["# tflite_bench segment profile", ""]
    lines += [
        f"- model: {meta['description']}; pruned: ratio {meta['ratio']}, "
        f"round_to {meta['round_to']} (uniform_keep + thin_model)",
        f"- whole model: {meta['dense_flops'] / 1e6:.1f} -> "
        f"{meta['pruned_flops'] / 1e6:.1f} MFLOPs "
        f"({meta['dense_flops'] / max(meta['pruned_flops'], 1):.2f}x)",
        f"- date: {meta.get('date')}, machine: {meta.get('platform')}, "
        f"{meta.get('cpu_count')} CPUs ({meta.get('processor')})",
        f"- timing: LiteRT interpreter (XNNPACK), batch 1; all "
        f"{2 * meta['segments']} prefix models timed interleaved; "
        f"warm-up {meta['warmup']}, {meta['rounds']} rounds x "
        f"{meta['runs_per_round']} runs; segment ms = difference of "
        "consecutive prefix medians (segment 1 includes the per-invoke "
        "overhead)",
        f"- run time: {meta.get('elapsed_s')} s",
        "",
    ]
    for t in sorted({r["threads"] for r in rows}):
        group = [r for r in rows if r["threads"] == t]
        lines += [f"## {t} thread(s)", ""]
        header = [
            "#",
            "first layer",
            "last layer (cut)",
            "cut shape (pruned)",
            "MFLOPs dense",
            "MFLOPs pruned",
            "FLOP red.",
            "ms dense",
            "ms pruned",
            "speed-up",
            "efficiency",
            "share of pruned ms",
            "conv out ch. pruned (dense)",
        ]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for r in group:
            ch = _channels(r["pruned_min_channels"], r["pruned_max_channels"])
            dch = _channels(r["dense_min_channels"], r["dense_max_channels"])
            share = r.get("pruned_share")
            cells = [
                str(r["segment"]),
                r["first_layer"] or "-",
                r["last_layer"],
                r.get("cut_shape_pruned") or "-",
                f"{r['dense_flops'] / 1e6:.2f}",
                f"{r['pruned_flops'] / 1e6:.2f}",
                fmt(r["flop_reduction"]),
                f"{r['dense_ms']:.3f}",
                f"{r['pruned_ms']:.3f}",
                fmt(r["speedup"]),
                fmt(r["efficiency"]),
                "-" if share is None else f"{100 * share:.1f}%",
                ch if ch == "-" else f"{ch} ({dch})",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        last = group[-1]
        d_total, p_total = last["dense_prefix_ms"], last["pruned_prefix_ms"]
        red = meta["dense_flops"] / max(meta["pruned_flops"], 1)
        speedup = d_total / p_total if p_total > 0 else None
        lines += [
            f"| all | | | | {meta['dense_flops'] / 1e6:.2f} | "
            f"{meta['pruned_flops'] / 1e6:.2f} | {red:.2f} | "
            f"{d_total:.3f} | {p_total:.3f} | {fmt(speedup)} | "
            f"{fmt(None if speedup is None else speedup / red)} | 100% | |",
            "",
        ]
    return "\n".join(lines)


def plot(rows, path):
    """Per-segment ms, dense vs pruned bars; one panel per thread count.

    Returns False when matplotlib is not installed.
    """
    plt = report.pyplot()
    if plt is None:
        return False
    threads = sorted({r["threads"] for r in rows})
    if not threads:
        return False
    n = max(len([r for r in rows if r["threads"] == t]) for t in threads)
    fig, axes = plt.subplots(
        len(threads),
        1,
        figsize=(max(6, 0.55 * n + 2), 3.6 * len(threads)),
        squeeze=False,
    )
    for ax, t in zip(axes[:, 0], threads):
        group = [r for r in rows if r["threads"] == t]
        xs = list(range(len(group)))
        ax.bar(
            [x - 0.2 for x in xs],
            [r["dense_ms"] for r in group],
            width=0.4,
            label="dense",
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [r["pruned_ms"] for r in group],
            width=0.4,
            label="pruned",
        )
        for x, r in zip(xs, group):
            if r["efficiency"] is not None:
                ax.annotate(
                    f"{r['efficiency']:.2f}",
                    (x + 0.2, max(r["pruned_ms"], 0)),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [f"{r['segment']}: {r['last_layer']}" for r in group],
            rotation=60,
            ha="right",
            fontsize=7,
        )
        ax.set_ylabel("segment latency (ms)")
        ax.set_title(
            f"{t} thread(s); numbers: speed-up / FLOP reduction", fontsize=9
        )
        ax.axhline(0, color="black", linewidth=0.5)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    return report.save_figure(fig, path)


def write_all(rows, meta, results_dir):
    """Writes profile.{csv,json,md,png}; returns {kind: path}."""
    paths = report.artifact_paths(results_dir, "profile", "profile.png")
    return report.write_artifacts(
        rows, meta, paths, CSV_COLUMNS, markdown, plot
    )
