"""`SensitivityReport`: metric of a model pruned one group at a time."""

import numpy as np


class SensitivityReport:
    """Result of `sensitivity_analysis`.

    Attributes:
        baseline: the metric of the unpruned model.
        ratios: the pruning ratios tried (same for every group).
        results: dict group name -> array of the metric, one per ratio.
        kept: dict group name -> list of kept-channel counts, one per
            ratio.
        metric_name: name of the metric (for tables and plots).
    """

    def __init__(self, baseline, ratios, results, kept, metric_name):
        self.baseline = float(baseline)
        self.ratios = np.asarray(ratios, "float64")
        self.results = {k: np.asarray(v, "float64") for k, v in results.items()}
        self.kept = {k: list(v) for k, v in kept.items()}
        self.metric_name = metric_name

    def max_ratios(self, tolerance):
        """Largest tried ratio per group whose metric drop is <= tolerance.

        Li et al. use this to give sensitive layers small ratios. A group
        whose smallest ratio already drops too much gets 0.

        Args:
            tolerance: allowed drop below the baseline (metric units).

        Returns:
            dict group name -> ratio.
        """
        out = {}
        for name, values in self.results.items():
            ok = self.baseline - values <= tolerance
            # Only the prefix of acceptable ratios counts: a ratio past a
            # failing one is not trusted.
            prefix = np.cumprod(ok).astype(bool)
            out[name] = (
                float(self.ratios[prefix].max()) if prefix.any() else 0.0
            )
        return out

    def table(self):
        """Plain-text table: one row per group, one column per ratio."""
        head = ["group"] + [f"{r:.2f}" for r in self.ratios]
        rows = [
            [f"(baseline {self.metric_name})"]
            + [f"{self.baseline:.4f}" for _ in self.ratios]
        ]
        for name, values in self.results.items():
            rows.append([name] + [f"{v:.4f}" for v in values])
        widths = [
            max(len(str(row[i])) for row in [head] + rows)
            for i in range(len(head))
        ]

        def line(cells):
            return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))

        sep = "-+-".join("-" * w for w in widths)
        return "\n".join([line(head), sep] + [line(r) for r in rows])

    def __str__(self):
        return self.table()

    def to_dict(self):
        return {
            "baseline": self.baseline,
            "ratios": self.ratios.tolist(),
            "metric": self.metric_name,
            "results": {k: v.tolist() for k, v in self.results.items()},
            "kept": self.kept,
        }

    def plot(self, path=None, ax=None):
        """Plots the metric against the ratio, one line per group.

        Args:
            path: optional file to save the figure to.
            ax: optional matplotlib axes to draw on.

        Returns:
            The matplotlib `Figure`.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        else:
            fig = ax.figure
        for name, values in self.results.items():
            ax.plot(self.ratios, values, marker="o", label=name)
        ax.axhline(
            self.baseline, color="gray", linestyle="--", label="baseline"
        )
        ax.set_xlabel("pruning ratio of the group")
        ax.set_ylabel(self.metric_name)
        ax.set_title("Sensitivity to pruning (one group at a time)")
        ax.legend(fontsize="small", ncol=2)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig
