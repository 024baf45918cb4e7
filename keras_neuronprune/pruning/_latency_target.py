"""Solving a latency target from a measured latency table (private).

A latency table (built by `python -m tflite_bench.latency_table`) holds,
for every convolution and dense layer of one model, its latency on one
runtime at one thread count as a function of its kept output and input
channels, plus the latency of the rest of the model. `LatencyModel` turns
it into a predictor of a keep-count assignment's latency, and
`solve_latency` chooses per-group keep counts that keep the most
importance under a latency budget: a greedy knapsack over the groups in
the manner of HALP, which removes, step by step, the channels that cost
the least importance per millisecond saved, then adds back whatever fits
(widths that do not save time, e.g. inside one SIMD tile, are refilled for
free).

Pure NumPy and JSON: LiteRT is only needed to build a table.

Reference:
    Shen et al., "Structural Pruning via Latency-Saliency Knapsack"
    (HALP), arXiv:2210.06659; Yang et al., "NetAdapt: Platform-Aware
    Neural Network Adaptation for Mobile Applications", arXiv:1804.03230.
"""

import hashlib
import json
import os

import numpy as np

TABLE_FORMAT = "keras_neuronprune.latency_table/1"
# How many latency-changing widths below (or above) the current one each
# group considers per greedy step: more than one lets a group jump over a
# plateau whose first step is expensive in importance.
_LOOKAHEAD = 3
_EPS_MS = 1e-9


# ----------------------------------------------------------------------
# Table files.


def model_fingerprint(model, input_shape=None):
    """What a latency table is built for: every layer's name and shapes.

    Args:
        model: a built functional or Sequential Keras model.
        input_shape: the costing shape of models with undefined input
            dimensions (as in `count_cost`).

    Returns:
        dict with "model" (its name), "input_shape" (without the batch
        dimension), "layers" (`[name, class, output shapes]` per layer call)
        and "digest" (SHA-1 of the layers).
    """
    from keras_neuronprune.cost import count_cost

    cost = count_cost(model, input_shape=input_shape)
    layers = [
        [row.name, row.class_name, [list(s)[1:] for s in row.output_shapes]]
        for row in cost.layers
    ]
    text = json.dumps(layers, sort_keys=True, default=str)
    first = tuple(cost.layers[0].input_shapes[0])[1:] if cost.layers else ()
    shape = input_shape if input_shape is not None else first
    return {
        "model": model.name,
        "input_shape": [None if d is None else int(d) for d in shape],
        "layers": layers,
        "digest": hashlib.sha1(text.encode()).hexdigest(),
    }


def load_table(table, name="latency_table"):
    """A latency table as a dict, from a path, a dict or a table object.

    Args:
        table: a path to the JSON file, its dict, or an object with
            `to_dict()` (`tflite_bench.latency_table.LatencyTable`).
        name: the argument name used in error messages.

    Returns:
        The table dict.

    Raises:
        ValueError: not a latency table (unreadable, or not this format).
    """
    if hasattr(table, "to_dict"):
        table = table.to_dict()
    if isinstance(table, (str, os.PathLike)):
        try:
            with open(table) as f:
                table = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(
                f"`{name}` could not be read as a latency table ({e}). "
                f"Received: {name}={str(table)!r}"
            ) from None
    if not isinstance(table, dict) or table.get("format") != TABLE_FORMAT:
        got = table.get("format") if isinstance(table, dict) else table
        raise ValueError(
            f"`{name}` must be a latency table ({TABLE_FORMAT!r}, built by "
            "`python -m tflite_bench.latency_table`): a path, its dict or a "
            f"LatencyTable. Received: {name}={str(got)[:80]!r}"
        )
    return table


def check_table(
    table,
    fingerprint=None,
    runtime=None,
    runtime_version=None,
    threads=None,
    name="latency_table",
):
    """Refuses a table built for another model, runtime or thread count.

    Args:
        table: the table dict (`load_table`).
        fingerprint: `model_fingerprint` of the model it is used for.
        runtime, runtime_version, threads: of the deployment it is used
            for; None skips the check.
        name: the argument name used in error messages.

    Raises:
        ValueError: naming what differs (model, layer, input size,
            runtime, runtime version or thread count).
    """
    built = table["built_for"]
    where = (
        f"`{name}` was built for model {built['model']!r} "
        f"({built['runtime']} {built['runtime_version']}, "
        f"{built['threads']} thread(s), input {built['input_shape']})"
    )
    if fingerprint is not None:
        if list(fingerprint["input_shape"]) != list(built["input_shape"]):
            raise ValueError(
                f"{where}, not for input size {fingerprint['input_shape']}: "
                "build a table at this size."
            )
        if fingerprint["digest"] != built["digest"]:
            raise ValueError(
                f"{where}, not for model {fingerprint['model']!r}: "
                + _first_difference(built["layers"], fingerprint["layers"])
            )
    for key, value in (
        ("runtime", runtime),
        ("runtime_version", runtime_version),
        ("threads", threads),
    ):
        if value is not None and built[key] != value:
            raise ValueError(
                f"{where}, not for {key.replace('_', ' ')} {value!r}: build "
                f"a table for {key}={value!r}."
            )


def _first_difference(built, other):
    for i, (a, b) in enumerate(zip(built, other)):
        if a != b:
            return (
                f"layer {i} differs (table: {a[0]!r} {a[1]} {a[2]}; model: "
                f"{b[0]!r} {b[1]} {b[2]})."
            )
    return f"the table has {len(built)} layer calls, the model {len(other)}."


# ----------------------------------------------------------------------
# Prediction.


def step_curve(counts, ms, size, tile):
    """Latency for 0..size channels from samples, with `tile` steps.

    A width that is not a multiple of `tile` costs as much as the next
    multiple (the runtime computes whole tiles); between the sampled
    widths the latency is interpolated linearly.

    Args:
        counts: sampled widths (increasing).
        ms: their latencies.
        size: the full width.
        tile: channel tile of the runtime for this layer (1: no steps).

    Returns:
        float array (size + 1,); entry 0 is 0.
    """
    n = np.arange(size + 1)
    rounded = np.minimum(size, np.ceil(n / tile) * tile)
    curve = np.interp(rounded, np.asarray(counts, "float64"), ms)
    curve[0] = 0.0
    return curve


class LatencyModel:
    """Predicted latency (ms) of per-group keep counts, from a table.

    Every measured layer costs `out(c_out) * in(c_in) / full`: its latency
    at `c_out` kept outputs (all inputs kept) scaled by the relative cost
    of `c_in` kept inputs (all outputs kept), times the table's
    `unit_scale` (what the layers timed alone do not explain inside the
    model: elementwise layers, activations that miss the cache). The kept
    widths follow from the groups as in `CostEstimator`; the per-invoke
    overhead `fixed_ms` stays.

    Args:
        table: a latency table dict.
        groups: the prunable `ChannelGroup`s.
    """

    def __init__(self, table, groups):
        self.names = [g.name for g in groups]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.sizes = np.array([g.size for g in groups], "int64")
        self.fixed_ms = float(table["fixed_ms"])
        self.dense_ms = float(table["dense_ms"])
        self.scale = float(table.get("unit_scale", 1.0))
        touches = {}
        for g in groups:
            for m in g.members:
                r = int(np.asarray(m.channels).reshape(g.size, -1).shape[1])
                entry = touches.setdefault(m.layer, {"in": [], "out": []})
                if m.role == "output":
                    entry["out"].append((self.index[g.name], r))
                elif m.input_index == 0:
                    entry["in"].append((self.index[g.name], r))
        self.layers = []
        self.group_layers = [[] for _ in groups]
        for unit in table["layers"]:
            entry = table["entries"][unit["entry"]]
            tile = int(entry.get("tile", 1))
            n_out, n_in = int(unit["n_out"]), int(unit["n_in"])
            out = entry["out"]
            out_curve = step_curve(out["counts"], out["ms"], n_out, tile)
            terms = touches.get(unit["name"], {"in": [], "out": []})
            if unit.get("depthwise") or "in" not in entry:
                in_curve, in_terms = None, []
            else:
                inp = entry["in"]
                in_curve = step_curve(inp["counts"], inp["ms"], n_in, 1)
                in_curve = in_curve / max(in_curve[-1], _EPS_MS)
                in_terms = terms["in"]
            layer = (n_out, terms["out"], out_curve, n_in, in_terms, in_curve)
            i = len(self.layers)
            self.layers.append(layer)
            for g in {g for g, _ in terms["out"]} | {g for g, _ in in_terms}:
                self.group_layers[g].append(i)
        self.base_ms = self.predict(self.sizes)

    def vector(self, counts):
        """int array of keep counts in group order (missing: whole)."""
        return np.array(
            [counts.get(n, s) for n, s in zip(self.names, self.sizes)],
            "int64",
        )

    def layer_ms(self, i, kept):
        n_out, out_terms, out_curve, n_in, in_terms, in_curve = self.layers[i]
        removed = self.sizes - kept
        c_out = n_out - sum(int(removed[g]) * r for g, r in out_terms)
        value = out_curve[max(0, c_out)]
        if in_curve is not None:
            c_in = n_in - sum(int(removed[g]) * r for g, r in in_terms)
            value *= in_curve[max(0, c_in)]
        return float(value) * self.scale

    def predict(self, kept):
        """Latency in ms of a keep-count vector (`vector`)."""
        kept = np.asarray(kept, "int64")
        return self.fixed_ms + sum(
            self.layer_ms(i, kept) for i in range(len(self.layers))
        )

    def share(self, counts):
        """Predicted latency of dict `counts` as a share of the dense one."""
        return self.predict(self.vector(counts)) / self.base_ms

    def delta(self, kept, group, count):
        """Latency change (ms) when `group` (index) keeps `count`."""
        old = kept[group]
        before = sum(self.layer_ms(i, kept) for i in self.group_layers[group])
        kept[group] = count
        after = sum(self.layer_ms(i, kept) for i in self.group_layers[group])
        kept[group] = old
        return after - before

    def neighbours(self, group):
        """Group indices whose latency terms share a layer with `group`."""
        out = set()
        for i in self.group_layers[group]:
            _, out_terms, _, _, in_terms, _ = self.layers[i]
            out.update(g for g, _ in out_terms)
            out.update(g for g, _ in in_terms)
        return out


# ----------------------------------------------------------------------
# Solving.


def _valid_counts(plan):
    return sorted(
        {plan.valid_count(n) for n in range(plan.lower, plan.kept_count + 1)}
    )


def _importance_prefix(plan, scores, normalize):
    """prefix[k]: importance of the k best still-kept channels.

    With `normalize` each group's scores are divided by their sum, so
    every group's importance is 1.
    """
    s = np.asarray(scores, "float64").reshape(-1)[plan.kept]
    s = np.maximum(s, 0.0)
    if normalize:
        total = float(np.sum(s))
        s = s / total if total > 0 else np.full_like(s, 1.0 / max(1, s.size))
    s = np.sort(s)[::-1]
    return np.concatenate([[0.0], np.cumsum(s)])


def _utility(prefix, normalize):
    """What the knapsack maximises, per kept count of one group.

    Per-group ranking (`normalize`): the log of the group's kept
    importance share. Summed over groups it is the log of their product:
    halving a 16-channel group costs as much as halving a 960-channel
    one, and emptying a group is never cheap, so no group collapses
    while a linear sum would empty the narrow, slow-per-channel groups
    first. Global ranking: the raw kept importance (HALP's objective).
    """
    if not normalize:
        return prefix
    return np.log(np.maximum(prefix, 1e-12) / max(prefix[-1], 1e-12))


def kept_importance(plans, scores, counts, normalize=True):
    """Share of the (normalised) importance that `counts` keeps.

    Args:
        plans: the `GroupPlan`s.
        scores: dict group name -> scores.
        counts: dict group name -> keep count.
        normalize: divide each group's scores by their sum first (every
            group weighs the same; the share is then the mean over groups
            of their kept shares).

    Returns:
        float in [0, 1].
    """
    kept, total = 0.0, 0.0
    for plan in plans:
        prefix = _importance_prefix(plan, scores[plan.name], normalize)
        kept += prefix[min(counts.get(plan.name, plan.size), len(prefix) - 1)]
        total += prefix[-1]
    return kept / total if total > 0 else 1.0


def smallest_share(plans, model, fixed=None):
    """Predicted latency share with every free group at its lower bound."""
    fixed = fixed or {}
    counts = {
        p.name: fixed.get(p.name, min(p.kept_count, p.valid_count(p.lower)))
        for p in plans
    }
    return model.share(counts)


def solve_latency(
    plans,
    scores,
    fixed,
    model,
    target,
    normalize=True,
    unreachable=None,
):
    """Keep counts with predicted latency share <= `target`, most importance.

    Greedy knapsack: starting from the kept counts, each step lowers one
    group to one of its next `_LOOKAHEAD` widths that save time, the one
    that loses the least utility (`_utility`) per millisecond saved, until the
    budget is met; then every group is raised again, free widths first
    (those the table says cost nothing, e.g. up to the top of a SIMD
    tile), then by importance gained per millisecond, while the budget
    holds. Widths obey each plan's limits (`valid_count`).

    Args:
        plans: `GroupPlan`s of the prunable groups.
        scores: dict group name -> importance scores (size,).
        fixed: dict group name -> keep count decided elsewhere.
        model: a `LatencyModel` over (a superset of) the groups.
        target: kept latency share, in (0, 1].
        normalize: per-group ranking (groups have incomparable score
            scales): maximise the sum of the logs of each group's kept
            importance share (see `_utility`); False: the raw kept
            importance (global ranking).
        unreachable: `unreachable(smallest) -> str`, the error message when
            the smallest reachable share is above `target`.

    Returns:
        dict group name -> keep count (every plan).

    Raises:
        ValueError: the target is below the smallest reachable latency.
    """
    fixed = dict(fixed or {})
    smallest = smallest_share(plans, model, fixed)
    if smallest > target + 1e-9:
        message = (
            unreachable(smallest)
            if unreachable
            else (
                f"`target_latency`={target} cannot be reached: the smallest "
                f"reachable latency is {smallest:.4f} of the dense one."
            )
        )
        raise ValueError(message)
    counts = {p.name: fixed.get(p.name, p.kept_count) for p in plans}
    kept = model.vector(counts)
    budget = target * model.base_ms
    free = [p for p in plans if p.name not in fixed and p.name in model.index]
    state = {
        p.name: (
            model.index[p.name],
            _valid_counts(p),
            _utility(
                _importance_prefix(p, scores[p.name], normalize), normalize
            ),
        )
        for p in free
    }
    by_index = {model.index[p.name]: p.name for p in free}
    current = model.predict(kept)
    cache = {}

    def down_move(name):
        g, values, prefix = state[name]
        k = int(kept[g])
        best, levels, last = None, 0, 0.0
        for value in reversed(values[: values.index(k)]):
            saved = -model.delta(kept, g, value)
            if saved <= last + _EPS_MS:
                continue
            last = saved
            levels += 1
            ratio = (prefix[k] - prefix[value]) / saved
            if best is None or ratio < best[0]:
                best = (ratio, value, saved)
            if levels >= _LOOKAHEAD:
                break
        return best

    while current > budget + _EPS_MS:
        best = None
        for name in state:
            if name not in cache:
                cache[name] = down_move(name)
            move = cache[name]
            if move is not None and (best is None or move[0] < best[1][0]):
                best = (name, move)
        if best is None:
            break
        name, (_, value, saved) = best
        g = state[name][0]
        kept[g] = value
        current -= saved
        for n in model.neighbours(g):
            cache.pop(by_index.get(n), None)

    _fill(state, kept, model, budget)
    return {
        p.name: int(kept[model.index[p.name]])
        if p.name in model.index
        else counts[p.name]
        for p in plans
    }


def _fill(state, kept, model, budget):
    """Raises groups back while the predicted latency stays in budget."""
    current = model.predict(kept)
    while True:
        best = None
        for name, (g, values, prefix) in state.items():
            k = int(kept[g])
            levels = 0
            for value in values[values.index(k) + 1 :]:
                cost = model.delta(kept, g, value)
                if current + cost > budget + _EPS_MS:
                    break
                gain = prefix[value] - prefix[k]
                # Free widths first (largest gain), then gain per ms.
                key = (0, -gain) if cost <= _EPS_MS else (1, -gain / cost)
                if best is None or key < best[0]:
                    best = (key, g, value, cost)
                if cost > _EPS_MS:
                    levels += 1
                    if levels >= _LOOKAHEAD:
                        break
        if best is None or best[0][1] >= 0:
            return
        _, g, value, cost = best
        kept[g] = value
        current += cost


def check_latency_target(value, table, name="target_latency"):
    """Checks `target_latency` (kept share of the dense latency, (0, 1])."""
    from keras_neuronprune.utils.validation import check_fraction

    check_fraction(
        value,
        name,
        include_zero=False,
        include_one=True,
        detail="(the fraction of the dense latency to keep) ",
    )
    if table is None:
        raise ValueError(
            f"`{name}` needs `latency_table=` (a table built by `python -m "
            "tflite_bench.latency_table` for this model). Received: "
            "latency_table=None"
        )
    return float(value)


def unreachable_message(target, table, smallest, min_channels, max_ratio):
    """The error of a target below what the table can reach."""
    dense = float(table["dense_ms"])
    return (
        f"`target_latency` cannot be reached: pruning every prunable group "
        f"to the limits (min_channels={min_channels}, max_pruning_ratio="
        f"{max_ratio}) the latency table predicts {smallest:.3f} of the "
        f"dense latency (about {smallest * dense:.3f} ms of {dense:.3f} ms), "
        f"the smallest reachable value. Received: target_latency={target!r}"
    )


def controller_counts(controller, plans, scores, fixed, progress):
    """Keep counts of a `StructuredPruningController` with a latency target.

    At `progress` p of the schedule the kept share is `1 - (1 -
    target_latency) * p`.
    """
    if controller._latency is None:
        controller._latency = LatencyModel(
            controller.latency_table, controller.groups
        )
    target = controller.target_latency

    def unreachable(smallest):
        return unreachable_message(
            target,
            controller.latency_table,
            smallest,
            controller.min_channels,
            controller.max_pruning_ratio,
        )

    return solve_latency(
        plans,
        scores,
        fixed,
        controller._latency,
        1.0 - (1.0 - target) * progress,
        normalize=not controller.global_pruning,
        unreachable=unreachable,
    )
