"""Fast parameter / FLOP estimate of a keep-count assignment (private).

For every layer touched by a prunable group, the cost after pruning is
its original cost times the kept fraction of its output channels and, for
layers that mix channels (Conv, Dense), of its input channels too (and, for
attention layers, of their heads). This is
exact for the bulk of the cost (kernels, per-channel layers) and off only
by bias-like terms, so the `target_flops` search runs on it and checks
the final answer against `count_cost` of the thinned model.
"""

import numpy as np


class CostEstimator:
    """Estimates params and FLOPs from per-group keep counts.

    Args:
        groups: the prunable `ChannelGroup`s.
        layer_costs: list of `[path, params, flops, n_in, n_out]` of the
            original model's layers.
        base_params, base_flops: totals of the original model.
    """

    def __init__(self, groups, layer_costs, base_params, base_flops):
        self.base_params = float(base_params)
        self.base_flops = float(base_flops)
        self.names = [g.name for g in groups]
        sizes = {g.name: g.size for g in groups}
        index = {name: i for i, name in enumerate(self.names)}
        touches = {}
        for g in groups:
            for m in g.members:
                entry = touches.setdefault(
                    m.layer,
                    {"in": [], "out": [], "internal": [], "mixing": False},
                )
                r = int(np.asarray(m.channels).reshape(g.size, -1).shape[1])
                if m.role == "internal":
                    # Attention heads: every projection and the attention
                    # itself scale with the kept share of the heads.
                    entry["internal"].append(index[g.name])
                elif m.role == "output":
                    entry["out"].append((index[g.name], r))
                elif m.input_index == 0:
                    entry["in"].append((index[g.name], r))
                if m.kind in ("producer", "consumer"):
                    entry["mixing"] = True
        self.sizes = np.array([sizes[n] for n in self.names], "float64")
        rows = []
        fixed_params = float(base_params)
        fixed_flops = float(base_flops)
        for path, params, flops, n_in, n_out in layer_costs:
            entry = touches.get(path)
            if entry is None or (not params and not flops):
                continue
            fixed_params -= params
            fixed_flops -= flops
            rows.append((params, flops, n_in, n_out, entry))
        self.fixed = (fixed_params, fixed_flops)
        self.rows = rows

    def estimate(self, counts):
        """`(params, flops)` for a dict group name -> kept count."""
        kept = np.array(
            [counts.get(n, s) for n, s in zip(self.names, self.sizes)],
            "float64",
        )
        removed = self.sizes - kept
        params, flops = self.fixed
        for p, f, n_in, n_out, entry in self.rows:
            out_frac = 1.0
            in_frac = 1.0
            if entry["out"] and n_out:
                gone = sum(removed[g] * r for g, r in entry["out"])
                out_frac = max(0.0, 1.0 - gone / n_out)
            if entry["in"] and n_in:
                gone = sum(removed[g] * r for g, r in entry["in"])
                in_frac = max(0.0, 1.0 - gone / n_in)
            if entry["mixing"]:
                factor = in_frac * out_frac
            elif entry["out"]:
                factor = out_frac
            else:
                factor = in_frac
            for g in entry["internal"]:
                factor *= kept[g] / self.sizes[g]
            params += p * factor
            flops += f * factor
        return params, flops


def layer_cost_table(model, cost):
    """`[path, params, flops, n_in, n_out]` rows of `count_cost(model)`.

    One row per layer call (a shared layer has several).
    """
    return [
        [
            c.name,
            int(c.params),
            int(c.flops),
            int(c.channels_in or 0),
            int(c.channels_out or 0),
        ]
        for c in cost.layers
    ]
