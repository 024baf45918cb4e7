"""Solving a FLOP target on top of the channel selector (private).

A FLOP target is reached by bisection on the shared pruning ratio of the
groups without a fixed count: first on the fast estimate of
`_cost_estimate.CostEstimator`, then, for the final answer, on the exact
cost of the thinned model (`exact`), bracketed around the estimate.
"""

import math

from keras_neuronprune.pruning._cost_estimate import CostEstimator

_TOP = 1.0 - 1e-9


def solve_flops(counts_at, estimate, target, exact=None, unreachable=None):
    """Keep counts whose FLOPs (a fraction of the original) meet `target`.

    Args:
        counts_at: `counts_at(ratio) -> counts`, the selector's keep counts
            for one shared ratio of the competing groups.
        estimate: `estimate(counts) -> float`, estimated kept FLOP share.
        target: kept FLOP share to reach.
        exact: None, or `exact(counts) -> float`, the exact kept share;
            given, the estimate's answer is refined with it.
        unreachable: `unreachable(kept) -> str`, the error message when
            pruning as far as allowed still keeps `kept` > target + 0.01.

    Returns:
        dict group name -> keep count.

    Raises:
        ValueError: the target cannot be reached.
    """

    def at(ratio):
        counts = counts_at(ratio)
        return estimate(counts), counts

    lo, hi = 0.0, _TOP
    best = at(lo)
    if best[0] <= target:
        return best[1]
    top = at(hi)
    if top[0] > target + 0.01:
        raise ValueError(unreachable(top[0]))
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        value, _ = at(mid)
        if value > target:
            lo = mid
        else:
            hi = mid
    counts = at(hi)[1]
    if exact is not None:
        counts = _refine_exact(counts_at, exact, target, hi)
    return counts


def _refine_exact(counts_at, exact_share, target, ratio):
    """Corrects the estimate's `ratio` with exact costs (cached)."""
    cache = {}

    def exact(r):
        counts = counts_at(r)
        key = tuple(sorted(counts.items()))
        if key not in cache:
            cache[key] = exact_share(counts)
        return cache[key], counts

    value, counts = exact(ratio)
    if abs(value - target) <= 0.005:
        return counts
    # Bracket the target with exact costs, then bisect.
    lo, hi = max(0.0, ratio - 0.1), min(_TOP, ratio + 0.1)
    while lo > 0.0 and exact(lo)[0] < target:
        lo = max(0.0, lo - 0.2)
    while hi < _TOP and exact(hi)[0] > target:
        hi = min(_TOP, hi + 0.2)
    best = (abs(value - target), counts)
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        value, counts = exact(mid)
        best = min(best, (abs(value - target), counts), key=lambda b: b[0])
        if best[0] <= 0.002:
            break
        if value > target:
            lo = mid
        else:
            hi = mid
    return best[1]


def check_flops_reachable(
    groups,
    layer_costs,
    cost,
    target,
    ratio_dict,
    min_channels,
    max_ratio,
    name="target_flops",
    value=None,
):
    """Fails early when pruning every group to its limits misses `target`.

    Args:
        groups: the prunable `ChannelGroup`s.
        layer_costs: `layer_cost_table` rows of the original model.
        cost: its `ModelCost`.
        target: kept FLOP share asked (`target_flops`).
        ratio_dict: dict group name -> the group's own ratio.
        min_channels, max_ratio: the keep-count limits.
        name: the argument the user passed, named in the message.
        value: the value the user passed (default: `target`).

    Raises:
        ValueError: naming the argument and the share that stays.
    """
    estimator = CostEstimator(groups, layer_costs, cost.params, cost.flops)
    counts = {}
    for g in groups:
        if g.name in ratio_dict:
            removed = int(round(ratio_dict[g.name] * g.size))
            counts[g.name] = g.size - removed
        else:
            counts[g.name] = min(
                g.size,
                max(min_channels, math.ceil((1.0 - max_ratio) * g.size)),
            )
    flops = estimator.estimate(counts)[1] / max(1, cost.flops)
    if flops > target + 0.01:
        value = target if value is None else value
        raise ValueError(
            f"`{name}` cannot be reached: even pruning every prunable "
            f"group to the limits (min_channels={min_channels}, "
            f"max_pruning_ratio={max_ratio}) keeps about {flops:.3f} of the "
            f"FLOPs. Received: {name}={value!r}"
        )
