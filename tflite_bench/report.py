"""Speed-up bookkeeping and the CSV / JSON / markdown / plot writers."""

import csv
import datetime
import json
import os
import platform

GOAL_EFFICIENCY = 0.85
GOAL_THREADS = 2

CSV_COLUMNS = (
    "family",
    "model",
    "ratio",
    "round_to",
    "criterion",
    "backend",
    "threads",
    "median_ms",
    "p90_ms",
    "p95_ms",
    "mean_ms",
    "min_ms",
    "std_ms",
    "runs",
    "cpu_median_ms",
    "cpu_p90_ms",
    "speedup_cpu",
    "efficiency_cpu",
    "params",
    "flops",
    "tflite_macs",
    "size_bytes",
    "flop_reduction",
    "speedup",
    "efficiency",
    "slower_than_parent",
    "max_abs_diff",
    "parity_passed",
    "gpu_compatible",
    "odd_channel_convs",
    "accuracy",
    "notes",
    "description",
)


def variant_kind(row):
    """ "dense", "uniform" or the criterion name of a result row.

    Rows of results written before criteria were benchmarked have no
    `criterion`; their pruned models are uniform.
    """
    if row["model"] == "dense":
        return "dense"
    return row.get("criterion") or "uniform"


def finalize(rows):
    """Adds speed-up columns and notes, relative to each dense parent.

    For every (family, backend, threads) the dense model is the parent:
    `flop_reduction` = parent FLOPs / FLOPs, `speedup` = parent median /
    median, `efficiency` = speedup / flop_reduction (1.0 means the measured
    speed-up equals the FLOP reduction).
    """
    rows = [dict(r) for r in rows]
    by_key = {}
    for r in rows:
        by_key.setdefault((r["family"], r["backend"], r["threads"]), []).append(
            r
        )
    for group in by_key.values():
        parent = next((r for r in group if r["model"] == "dense"), None)
        for r in group:
            r["notes"] = []
            if parent is None or not r.get("median_ms"):
                r["flop_reduction"] = r["speedup"] = r["efficiency"] = None
                r["speedup_cpu"] = r["efficiency_cpu"] = None
                r["slower_than_parent"] = None
                continue
            r["flop_reduction"] = parent["flops"] / max(r["flops"], 1)
            r["speedup"] = parent["median_ms"] / r["median_ms"]
            r["efficiency"] = r["speedup"] / r["flop_reduction"]
            if r.get("cpu_median_ms") and parent.get("cpu_median_ms"):
                r["speedup_cpu"] = parent["cpu_median_ms"] / r["cpu_median_ms"]
                r["efficiency_cpu"] = r["speedup_cpu"] / r["flop_reduction"]
            else:
                r["speedup_cpu"] = r["efficiency_cpu"] = None
            r["slower_than_parent"] = (
                r is not parent and r["median_ms"] > parent["median_ms"]
            )
            if r is parent:
                continue
            t = f"t={r['threads']}"
            if r["slower_than_parent"]:
                r["notes"].append(
                    f"{t}: SLOWER than its dense parent ({r['median_ms']:.2f}"
                    f" ms vs {parent['median_ms']:.2f} ms)"
                )
            elif r["efficiency"] < GOAL_EFFICIENCY:
                r["notes"].append(
                    f"{t}: speed-up {r['speedup']:.2f}x is "
                    f"{r['efficiency']:.2f} of the FLOP reduction "
                    f"{r['flop_reduction']:.2f}x"
                )
        # Odd channel counts: compare round_to=1 with round_to>1 at the
        # same ratio.
        for r in group:
            if r.get("round_to") != 1 or not r.get("odd_channel_convs"):
                continue
            rounded = [
                o
                for o in group
                if o["ratio"] == r["ratio"]
                and variant_kind(o) == variant_kind(r)
                and (o.get("round_to") or 1) > 1
                and o.get("median_ms")
            ]
            for o in rounded:
                if r["median_ms"] > o["median_ms"] and r["flops"] <= o["flops"]:
                    r["notes"].append(
                        f"t={r['threads']}: odd channel counts cost speed: "
                        f"{r['median_ms']:.2f}"
                        f" ms with round_to=1 ({r['odd_channel_convs']} convs "
                        f"not a multiple of 8) vs {o['median_ms']:.2f} ms "
                        f"with round_to={o['round_to']} despite "
                        f"{o['flops'] / max(r['flops'], 1):.2f}x its FLOPs"
                    )
    for r in rows:
        r["notes"] = "; ".join(r["notes"])
    return rows


def goal_rows(rows):
    """Rows the goal is judged on (uniform, round_to=8, 2 threads)."""
    return [
        r
        for r in rows
        if r.get("round_to") == 8
        and variant_kind(r) == "uniform"
        and r["threads"] == GOAL_THREADS
        and r["backend"] == "host-xnnpack"
        and r.get("efficiency") is not None
    ]


def environment(config, elapsed_s):
    """Machine, versions and settings of a run."""
    versions = {}
    for module in ("tensorflow", "keras", "ai_edge_litert", "numpy"):
        try:
            from importlib import metadata

            dist = {"ai_edge_litert": "ai-edge-litert"}.get(module, module)
            versions[module] = metadata.version(dist)
        except Exception:
            versions[module] = None
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "elapsed_s": round(elapsed_s, 1),
        "config": {
            "models": list(config.models),
            "ratios": list(config.ratios),
            "round_tos": list(config.round_tos),
            "criteria": list(getattr(config, "criteria", ())),
            "threads": list(config.threads),
            "warmup": config.warmup,
            "rounds": config.rounds,
            "runs_per_round": config.runs_per_round,
            "resolution": config.resolution,
            "quick": config.quick,
            "device": None
            if config.device is None
            else {
                "serial": config.device.serial,
                "use_gpu": config.device.use_gpu,
            },
        },
        "timing": (
            "LiteRT Interpreter (ai_edge_litert) with its default XNNPACK "
            "delegate; batch 1; interleaved rounds (every round times every "
            "model of a family in shuffled order); per-invoke wall time "
            "(median, p90) and process CPU time (cpu_median_ms: all "
            "threads, excluding time the process was preempted)"
        ),
    }


def write_artifacts(rows, meta, paths, columns, markdown_fn, plot_fn):
    """Writes rows as CSV, JSON (with `meta`), markdown and a plot.

    Args:
        rows: result rows (dicts).
        meta: run metadata stored beside the rows in the JSON file.
        paths: {"csv", "json", "markdown", "plot"} -> file path.
        columns: CSV columns.
        markdown_fn: `markdown_fn(rows, meta) -> str`.
        plot_fn: `plot_fn(rows, path) -> bool` (False: no plot written,
            e.g. matplotlib missing).

    Returns:
        `paths` without "plot" when no plot was written.
    """
    paths = dict(paths)
    for path in paths.values():
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_csv(rows, paths["csv"], columns)
    with open(paths["json"], "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2, default=str)
    with open(paths["markdown"], "w") as f:
        f.write(markdown_fn(rows, meta))
    if not plot_fn(rows, paths["plot"]):
        paths.pop("plot")
    return paths


def artifact_paths(results_dir, stem, plot_name):
    """{"csv", "json", "markdown", "plot"} -> paths in `results_dir`."""
    return {
        "csv": os.path.join(results_dir, f"{stem}.csv"),
        "json": os.path.join(results_dir, f"{stem}.json"),
        "markdown": os.path.join(results_dir, f"{stem}.md"),
        "plot": os.path.join(results_dir, plot_name),
    }


def write_all(rows, meta, results_dir):
    """results.{csv,json,md} and latency_vs_flops.png in `results_dir`."""
    paths = artifact_paths(results_dir, "results", "latency_vs_flops.png")
    return write_artifacts(rows, meta, paths, CSV_COLUMNS, markdown, plot)


def write_csv(rows, path, columns=CSV_COLUMNS):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(r.get(k)) for k in columns})


def _csv_value(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def fmt(v, spec=".2f", none="-"):
    """`format(v, spec)`, or `none` for None."""
    return none if v is None else format(v, spec)


def markdown(rows, meta):
    """The results as markdown tables (one per family and backend)."""
    lines = ["# tflite_bench results", ""]
    cfg = meta["config"]
    lines += [
        f"- date: {meta['date']}, machine: {meta['platform']}, "
        f"{meta['cpu_count']} CPUs ({meta['processor']})",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- timing: {meta['timing']}; warm-up {cfg['warmup']}, "
        f"{cfg['rounds']} rounds x {cfg['runs_per_round']} runs per model "
        "and thread count",
        f"- run time: {meta['elapsed_s']} s",
        "",
    ]
    families = []
    for r in rows:
        key = (r["family"], r["backend"])
        if key not in families:
            families.append(key)
    for family, backend in families:
        group = [
            r for r in rows if r["family"] == family and r["backend"] == backend
        ]
        threads = sorted({r["threads"] for r in group})
        desc = group[0].get("description", family)
        lines += [f"## {desc} ({backend})", ""]
        ref_t = GOAL_THREADS if GOAL_THREADS in threads else threads[0]
        header = (
            [
                "model",
                "pruning",
                "ratio",
                "round_to",
                "params (M)",
                "GFLOPs",
                "MB",
            ]
            + [f"median ms t={t} (p90)" for t in threads]
            + [
                "FLOP reduction",
                f"speed-up t={ref_t}",
                f"speed-up / FLOP red. t={ref_t}",
                f"CPU-time speed-up t={ref_t}",
                "max abs diff",
            ]
        )
        has_acc = any(r.get("accuracy") is not None for r in group)
        if has_acc:
            header.append("accuracy")
        header.append("notes")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        models = []
        for r in group:
            if r["model"] not in models:
                models.append(r["model"])
        for m in models:
            mrows = {r["threads"]: r for r in group if r["model"] == m}
            first = next(iter(mrows.values()))
            ref = mrows.get(ref_t, first)
            cells = [
                m,
                variant_kind(first),
                fmt(first["ratio"], ".2f"),
                str(first["round_to"] or "-"),
                fmt(first["params"] / 1e6, ".3f"),
                fmt(first["flops"] / 1e9, ".3f"),
                fmt(first["size_bytes"] / 1e6, ".2f"),
            ]
            for t in threads:
                r = mrows.get(t)
                if r is None or r.get("median_ms") is None:
                    cells.append("-")
                else:
                    p90 = r.get("p90_ms")
                    p = f" ({p90:.2f})" if p90 is not None else ""
                    cells.append(f"{r['median_ms']:.2f}{p}")
            cells += [
                fmt(ref.get("flop_reduction"), ".2f"),
                fmt(ref.get("speedup"), ".2f"),
                fmt(ref.get("efficiency"), ".2f"),
                fmt(ref.get("speedup_cpu"), ".2f"),
                fmt(first.get("max_abs_diff"), ".1e"),
            ]
            if has_acc:
                cells.append(fmt(first.get("accuracy"), ".4f"))
            notes = "; ".join(
                sorted({r["notes"] for r in mrows.values() if r.get("notes")})
            )
            cells.append(notes)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    goals = goal_rows(rows)
    if goals:
        # Process CPU time is a contention-free cross-check only with one
        # thread: with more, XNNPACK's workers spin while they wait and
        # their spinning counts as CPU time.
        single = {
            (r["family"], r["model"], r["backend"]): r
            for r in rows
            if r["threads"] == 1
        }
        lines += [
            f"## Goal: speed-up >= {GOAL_EFFICIENCY} x FLOP reduction "
            f"(uniform, round_to=8, XNNPACK, {GOAL_THREADS} threads)",
            "",
            "| family | ratio | FLOP reduction | speed-up (wall) | "
            "speed-up / FLOP red. | met | 1-thread CPU-time speed-up | "
            "1-thread CPU-time speed-up / FLOP red. |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in goals:
            met = "yes" if r["efficiency"] >= GOAL_EFFICIENCY else "NO"
            one = single.get((r["family"], r["model"], r["backend"]), {})
            lines.append(
                f"| {r['family']} | {r['ratio']:.2f} | "
                f"{r['flop_reduction']:.2f} | {r['speedup']:.2f} | "
                f"{r['efficiency']:.3f} | {met} | "
                f"{fmt(one.get('speedup_cpu'))} | "
                f"{fmt(one.get('efficiency_cpu'), '.3f')} |"
            )
        lines.append("")
    slower = [r for r in rows if r.get("slower_than_parent")]
    lines.append(
        "Pruned models slower than their dense parent: "
        + (
            ", ".join(
                f"{r['family']}/{r['model']} (t={r['threads']}, {r['backend']})"
                for r in slower
            )
            if slower
            else "none"
        )
        + "."
    )
    lines.append("")
    return "\n".join(lines)


_MARKERS = ("^", "s", "D", "v", "P", "X", "*")


def save_figure(fig, path, rect=None):
    """Lays out, saves (120 dpi) and closes a figure; returns True."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def pyplot():
    """`matplotlib.pyplot` on the Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot(rows, path):
    """Latency vs FLOPs: one colour per model family, one panel per thread
    count.

    Uniform prunings are lines (solid `round_to` > 1, dashed
    `round_to=1`), criterion prunings are markers, and a dotted line from
    each dense model shows latency proportional to FLOPs (speed-up =
    FLOP reduction). One legend for the figure, below the panels.

    Returns False when matplotlib is not installed.
    """
    plt = pyplot()
    if plt is None:
        return False
    from matplotlib import ticker
    from matplotlib.lines import Line2D

    panels = sorted({(r["backend"], r["threads"]) for r in rows})
    if not panels:
        return False
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False
    )
    families = sorted({r["family"] for r in rows})
    all_kinds = sorted({variant_kind(r) for r in rows} - {"dense", "uniform"})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (backend, threads) in zip(axes[0], panels):
        for i, family in enumerate(families):
            color = colors[i % len(colors)]
            group = [
                r
                for r in rows
                if r["family"] == family
                and r["backend"] == backend
                and r["threads"] == threads
                and r.get("median_ms")
            ]
            dense = [r for r in group if r["model"] == "dense"]
            if dense and len(group) > 1:
                lo = min(r["flops"] for r in group)
                d = dense[0]
                ax.plot(
                    [lo / 1e9, d["flops"] / 1e9],
                    [d["median_ms"] * lo / d["flops"], d["median_ms"]],
                    linestyle=":",
                    color=color,
                    alpha=0.6,
                )
            uniform = [r for r in group if variant_kind(r) == "uniform"]
            round_tos = sorted({r["round_to"] for r in uniform})
            for rt in round_tos or [None]:
                line = dense + [r for r in uniform if r["round_to"] == rt]
                line.sort(key=lambda r: r["flops"])
                if not line:
                    continue
                ax.plot(
                    [r["flops"] / 1e9 for r in line],
                    [r["median_ms"] for r in line],
                    marker="o",
                    markersize=4,
                    linestyle="-" if (rt or 1) > 1 else "--",
                    color=color,
                )
            # Criterion prunings: one marker shape per criterion, no line
            # (their widths differ per layer, so they are points, not a
            # family of the same shape).
            for kind in all_kinds:
                pts = [r for r in group if variant_kind(r) == kind]
                if not pts:
                    continue
                ax.scatter(
                    [r["flops"] / 1e9 for r in pts],
                    [r["median_ms"] for r in pts],
                    marker=_MARKERS[all_kinds.index(kind) % len(_MARKERS)],
                    color=color,
                    s=30,
                    zorder=3,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("GFLOPs")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"{backend}, {threads} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
    handles = [
        Line2D([], [], color=colors[i % len(colors)], marker="o", label=f)
        for i, f in enumerate(families)
    ]
    handles += [
        Line2D([], [], color="gray", linestyle=style, label=label)
        for style, label in (
            ("-", "uniform, round_to>1"),
            ("--", "uniform, round_to=1"),
            (":", "speed-up = FLOP red."),
        )
    ]
    handles += [
        Line2D(
            [],
            [],
            color="gray",
            marker=_MARKERS[j % len(_MARKERS)],
            linestyle="",
            label=kind,
        )
        for j, kind in enumerate(all_kinds)
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 8),
        fontsize=8,
        frameon=False,
    )
    return save_figure(fig, path, rect=(0, 0.1, 1, 1))
