"""Outputs of the quality benchmark: JSON, CSV, markdown table, plots."""

import csv
import json
import os

import numpy as np

CSV_FIELDS = (
    "dataset",
    "model",
    "method",
    "target",
    "seed",
    "flops",
    "params",
    "flops_kept",
    "params_kept",
    "dense_acc",
    "acc_before_mask",
    "acc_pruned",
    "acc_final",
    "epochs_reg",
    "epochs_ft",
    "epochs_scratch",
    "cpu_s",
    "wall_s",
)


def write_all(rows, results_dir, budget, histograms):
    """Writes results.json, results.csv, results.md, pareto.png, RNI plots.

    Returns:
        List of the written paths.
    """
    os.makedirs(results_dir, exist_ok=True)
    paths = []
    path = os.path.join(results_dir, "results.json")
    with open(path, "w") as f:
        json.dump({"budget": budget, "runs": rows}, f, indent=1)
    paths.append(path)
    path = os.path.join(results_dir, "results.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    paths.append(path)
    path = os.path.join(results_dir, "results.md")
    with open(path, "w") as f:
        f.write(markdown(rows, budget))
    paths.append(path)
    path = os.path.join(results_dir, "pareto.png")
    pareto_plot(rows, path)
    paths.append(path)
    for name, hist in sorted(histograms.items()):
        if hist is None:
            continue
        path = os.path.join(results_dir, f"rni_importances_{name}.png")
        from keras_neuronprune.demo import plot_importances

        plot_importances(
            {g: np.asarray(v) for g, v in hist["groups"].items()},
            hist["threshold"],
            path,
            f"RNI importances at pruning time ({name})",
        )
        paths.append(path)
    return paths


def _stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    arr = np.asarray(values, "float64")
    spread = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return float(arr.mean()), spread, len(arr)


def _fmt(values, scale=100.0, digits=2):
    mean, spread, n = _stat(values)
    if mean is None:
        return "-"
    if n == 1:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {spread * scale:.{digits}f}"


def aggregate(rows):
    """Dict (dataset, model, target, method) -> list of rows (over seeds)."""
    out = {}
    for row in rows:
        key = (row["dataset"], row["model"], row["target"], row["method"])
        out.setdefault(key, []).append(row)
    return out


def markdown(rows, budget):
    """One table per (dataset, model): methods x targets."""
    lines = ["# Quality benchmark", "", budget_text(budget), ""]
    lines += [
        "Accuracy in % of the test set, mean ± sample standard deviation "
        "over seeds (n seeds in the `n` column). `before FT`: right after "
        "the mask is applied (for regularised methods, after their "
        "regularised epochs), before any fine-tuning. `FLOPs`: kept "
        "fraction of the dense model's FLOPs.",
        "",
    ]
    groups = aggregate(rows)
    models = sorted({(d, m) for d, m, _, _ in groups})
    for dataset, model in models:
        dense = [
            r["dense_acc"]
            for r in rows
            if r["dataset"] == dataset and r["model"] == model
        ]
        dense_by_seed = {}
        for r in rows:
            if r["dataset"] == dataset and r["model"] == model:
                dense_by_seed[r["seed"]] = r["dense_acc"]
        lines.append(
            f"## {model} on {dataset} (dense: "
            f"{_fmt(list(dense_by_seed.values()))}%, "
            f"{len(dense_by_seed)} seed(s))"
        )
        lines.append("")
        lines.append(
            "| target | method | n | FLOPs | params | before FT | after FT "
            "| Δ vs dense (points) | CPU s/run |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        targets = sorted(
            {t for d, m, t, _ in groups if (d, m) == (dataset, model)}
        )
        for target in targets:
            entries = [
                (meth, runs)
                for (d, m, t, meth), runs in groups.items()
                if (d, m, t) == (dataset, model, target)
            ]
            entries.sort(
                key=lambda e: -(_stat([r["acc_final"] for r in e[1]])[0] or 0)
            )
            for method, runs in entries:
                delta = [
                    r["acc_final"] - r["dense_acc"]
                    for r in runs
                    if r["acc_final"] is not None
                ]
                lines.append(
                    f"| {target} | {method} | {len(runs)} "
                    f"| {_fmt([r['flops_kept'] for r in runs], 1, 3)} "
                    f"| {_fmt([r['params_kept'] for r in runs], 1, 3)} "
                    f"| {_fmt([r['acc_pruned'] for r in runs])} "
                    f"| {_fmt([r['acc_final'] for r in runs])} "
                    f"| {_fmt(delta)} "
                    f"| {np.mean([r['cpu_s'] for r in runs]):.0f} |"
                )
        lines.append("")
        del dense
    return "\n".join(lines) + "\n"


def budget_text(budget):
    return (
        f"Training budget: dense baseline {budget['epochs']} epoch(s) "
        f"(lr {budget['lr']}, cosine); then every pruned method gets "
        f"{budget['reg_epochs'] + budget['finetune_epochs']} epoch(s) from "
        "the dense checkpoint with the same optimiser (SGD, momentum 0.9, "
        f"Nesterov, weight decay {budget['weight_decay']}, lr "
        f"{budget['finetune_lr']} cosine over all of them), batch "
        f"{budget['batch_size']}, same seeds: regularised methods "
        f"({', '.join(budget['regularised'])}) regularise "
        f"{budget['reg_epochs']} epoch(s), prune once, fine-tune "
        f"{budget['finetune_epochs']}; the others prune at once and fine-"
        f"tune {budget['reg_epochs'] + budget['finetune_epochs']}; `scratch` "
        "(the uniform thin architecture, fresh weights) trains "
        f"{budget['epochs'] + budget['reg_epochs'] + budget['finetune_epochs']}"
        f" epoch(s) with the dense schedule. Training images: "
        f"{budget['train_images']}, test images: {budget['test_images']}; "
        f"augmentation: {'crop + flip' if budget['augment'] else 'none'}. "
        f"ResNet shortcuts: {budget['shortcut']}."
    )


def pareto_plot(rows, path):
    """Accuracy vs kept FLOPs, one panel per (dataset, model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = aggregate(rows)
    panels = sorted({(d, m) for d, m, _, _ in groups})
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4.5),
        squeeze=False,
    )  # fmt: skip
    methods = sorted({meth for _, _, _, meth in groups})
    cmap = plt.get_cmap("tab20")
    # Dark shades of tab20 first, then the light ones.
    colours = {
        m: cmap((2 * i) % 20 + (2 * i // 20) % 2) for i, m in enumerate(methods)
    }
    for ax, (dataset, model) in zip(axes[0], panels):
        points = []
        for (d, m, target, method), runs in groups.items():
            if (d, m) != (dataset, model):
                continue
            acc = _stat([r["acc_final"] for r in runs])
            flops = _stat([r["flops_kept"] for r in runs])[0]
            if acc[0] is None:
                continue
            points.append((flops, acc[0]))
            ax.errorbar(
                flops, acc[0] * 100, yerr=acc[1] * 100, fmt="o",
                color=colours[method], label=method, capsize=2,
            )  # fmt: skip
        dense = _stat(
            list(
                {
                    r["seed"]: r["dense_acc"]
                    for r in rows
                    if (r["dataset"], r["model"]) == (dataset, model)
                }.values()
            )
        )[0]
        if dense is not None:
            ax.plot(1.0, dense * 100, "k*", markersize=12, label="dense")
            points.append((1.0, dense))
        front, best = [], -1.0
        # Non-dominated points: no cheaper point (or equally cheap, within
        # 1% of FLOPs) is at least as accurate.
        for f, a in sorted(
            points, key=lambda p: (round(float(np.log(p[0])), 2), -p[1])
        ):
            if a > best:
                front.append((f, a))
                best = a
        if front:
            ax.plot(
                [f for f, _ in front], [a * 100 for _, a in front], "k--",
                linewidth=0.8, label="Pareto front",
            )  # fmt: skip
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, ncol=2)
        ax.set_xscale("log")
        ax.set_xlabel("FLOPs kept (fraction of dense, log scale)")
        ax.set_ylabel("test accuracy after fine-tuning (%)")
        ax.set_title(f"{model} on {dataset}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
