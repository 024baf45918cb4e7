"""`ChannelSelector`: one selector, each caller's former keep sets.

The reference functions below are the selections the callers made on their
own before they shared the selector (iterative drivers, `uniform_keep`,
`sensitivity_analysis`, `thinet_prune`); the selector must reproduce them.
"""

import math

import numpy as np
import pytest

from keras_neuronprune.core.selection import ChannelSelector
from keras_neuronprune.graph.channel_group import ChannelGroup
from keras_neuronprune.pruning import _flops_target
from keras_neuronprune.pruning.iterative import global_keep
from keras_neuronprune.rewrite.keep_sets import first_channels
from keras_neuronprune.rewrite.keep_sets import keep_count


def _group(name, size, partitions=(), prunable=True):
    return ChannelGroup(name, size, prunable, True, None, [], list(partitions))


def _old_global_keep(groups, scores, n_remove, min_channels=1):
    candidates = []
    for g in groups:
        if g.prunable and g.name in scores:
            for c, s in enumerate(np.asarray(scores[g.name])):
                candidates.append((float(s), g.name, c))
    candidates.sort()
    sizes = {g.name: g.size for g in groups}
    removed = {name: set() for name in sizes}
    count = 0
    for _, name, c in candidates:
        if count >= n_remove:
            break
        if sizes[name] - len(removed[name]) <= min_channels:
            continue
        removed[name].add(c)
        count += 1
    keep = {
        name: [c for c in range(sizes[name]) if c not in gone]
        for name, gone in removed.items()
        if gone
    }
    return keep, count


def _old_keep_count(group, ratio, round_to=1):
    n = group.size - int(np.floor(ratio * group.size + 1e-9))
    n = max(n, 1)
    step = int(round_to)
    for _, chunks in group.partitions:
        step = int(np.lcm(step, int(chunks.max()) + 1))
    n = int(np.ceil(n / step) * step)
    return min(n, group.size)


def _old_first_channels(group, n):
    if not group.partitions:
        return np.arange(n, dtype=np.int64)
    chunks = group.partitions[0][1]
    n_chunks = int(chunks.max()) + 1
    per = n // n_chunks
    kept = [np.nonzero(chunks == c)[0][:per] for c in range(n_chunks)]
    return np.sort(np.concatenate(kept)).astype(np.int64)


def _old_half_up_keep(scores, ratio, min_channels):
    """`sensitivity_analysis`'s (and `thinet_prune`'s) keep set."""
    size = len(scores)
    order = np.argsort(-np.asarray(scores), kind="stable")
    n_remove = int(np.floor(ratio * size + 0.5))
    n_keep = min(max(int(min_channels), size - n_remove), size)
    return np.sort(order[:n_keep])


@pytest.mark.parametrize("seed", range(40))
def test_global_keep_matches_the_former_iterative_ranking(seed):
    rng = np.random.default_rng(seed)
    groups = [
        _group(name, int(rng.integers(1, 9)), prunable=rng.random() > 0.2)
        for name in ("c", "a", "d", "b")
    ]
    # Few distinct values: ties across and within groups are frequent.
    scores = {
        g.name: rng.integers(0, 4, g.size).astype("float64") for g in groups
    }
    del scores["d"]
    n_remove = int(rng.integers(0, 25))
    min_channels = int(rng.integers(0, 4))
    assert global_keep(groups, scores, n_remove, min_channels) == (
        _old_global_keep(groups, scores, n_remove, min_channels)
    )


def test_global_keep_removes_lower_name_and_index_first_on_ties():
    groups = [_group("b", 3), _group("a", 3)]
    scores = {"a": np.ones(3), "b": np.ones(3)}
    keep, removed = global_keep(groups, scores, 4)
    assert removed == 4
    assert keep == {"b": [2], "a": [2]}


@pytest.mark.parametrize("round_to", [1, 2, 3, 8])
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.7, 0.99])
def test_uniform_counts_and_channels_match_the_former_ones(ratio, round_to):
    wide = np.repeat(np.arange(4), 3)  # 4 conv groups of 3
    narrow = np.repeat(np.arange(2), 6)
    for partitions in ([], [("g1", narrow)], [("g1", narrow), ("g2", wide)]):
        group = _group("g", 12, partitions)
        n = keep_count(group, ratio, round_to)
        assert n == _old_keep_count(group, ratio, round_to)
        if n < group.size and len(partitions) < 2:
            np.testing.assert_array_equal(
                first_channels(group, n), _old_first_channels(group, n)
            )
        elif n < group.size:
            # The former selection balanced the first partition only and
            # left the 4 groups of 3 unequal; every partition is balanced.
            kept = first_channels(group, n)
            assert len(kept) == n
            for _, chunks in partitions:
                counts = np.bincount(chunks[kept], minlength=chunks.max() + 1)
                assert np.all(counts == counts[0]), (partitions, kept)


@pytest.mark.parametrize("seed", range(30))
def test_half_up_selection_matches_sensitivity_and_thinet(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 12))
    scores = rng.integers(0, 5, size).astype("float64")
    ratio = float(rng.choice([0.0, 0.1, 0.25, 0.5, 0.75, 0.9]))
    min_channels = int(rng.integers(0, 4))
    # Partitions are ignored by these callers ("none").
    group = _group("g", size, [("gc", np.arange(size) % 1)])
    selector = ChannelSelector(
        min_channels=min_channels, rounding="half_up", partition="none"
    )
    plans = selector.plans([group])
    counts = selector.ratio_counts(plans, {"g": scores}, {}, ratio)
    keep = selector.keep_sets(plans, {"g": scores}, counts)["g"]
    expected = _old_half_up_keep(scores, ratio, min_channels)
    assert counts["g"] == len(expected)
    if counts["g"] < size:
        np.testing.assert_array_equal(keep, expected)


def test_selector_counts_fixed_then_dict_then_ratio():
    selector = ChannelSelector(global_pruning=True)
    groups = [_group("a", 4), _group("b", 4), _group("c", 4)]
    plans = selector.plans(groups)
    scores = {
        "a": np.array([1.0, 2, 3, 4]),
        "b": np.array([5.0, 6, 7, 8]),
        "c": np.array([0.1, 0.2, 0.3, 0.4]),
    }
    counts = selector.counts(plans, scores, 0.5, {"b": 0.5}, {"a": 4})
    # a fixed, b by its own ratio, c alone in the global ranking.
    assert counts == {"a": 4, "b": 2, "c": 2}
    assert selector.counts(plans, scores, None, {"b": 0.25}) == {
        "b": 3,
        "a": 4,
        "c": 4,
    }
    keep = selector.select(groups, scores, 0.25)
    assert list(keep) == ["c"]
    np.testing.assert_array_equal(keep["c"], [3])


def test_selector_rejects_unknown_options():
    with pytest.raises(ValueError, match="rounding"):
        ChannelSelector(rounding="ceil")
    with pytest.raises(ValueError, match="partition"):
        ChannelSelector(partition="all")
    with pytest.raises(ValueError, match="ties"):
        ChannelSelector(ties="random")


def test_solve_flops_bisects_to_the_target():
    # One group of 100 channels whose FLOPs are proportional to the kept
    # count: the answer is the count closest above the target.
    selector = ChannelSelector()
    plans = selector.plans([_group("g", 100)])

    def counts_at(ratio):
        return selector.ratio_counts(plans, None, {}, ratio)

    counts = _flops_target.solve_flops(counts_at, lambda c: c["g"] / 100, 0.37)
    assert counts == {"g": 37}
    # Already below the target: nothing is pruned.
    assert _flops_target.solve_flops(counts_at, lambda c: 0.3, 0.5) == {
        "g": 100
    }


def test_solve_flops_refines_with_the_exact_cost():
    selector = ChannelSelector()
    plans = selector.plans([_group("g", 100)])
    calls = []

    def exact(counts):
        calls.append(counts["g"])
        # The estimate is off by 0.1: the exact answer keeps about 27.
        return counts["g"] / 100 + 0.1

    counts = _flops_target.solve_flops(
        lambda r: selector.ratio_counts(plans, None, {}, r),
        lambda c: c["g"] / 100,
        0.37,
        exact=exact,
    )
    # The estimate alone keeps 37 (exact share 0.47); the bracketed
    # bisection on exact costs lands within a channel of 27.
    assert counts["g"] in (27, 28)
    assert len(calls) == len(set(calls))  # cached per count


def test_solve_flops_unreachable_message():
    selector = ChannelSelector(max_pruning_ratio=0.5)
    plans = selector.plans([_group("g", 10)])
    with pytest.raises(ValueError, match="keeps 0.500"):
        _flops_target.solve_flops(
            lambda r: selector.ratio_counts(plans, None, {}, r),
            lambda c: c["g"] / 10,
            0.2,
            unreachable=lambda kept: f"keeps {kept:.3f}",
        )


def test_half_up_rounding_differs_from_floor():
    # 0.25 * 10 = 2.5: floor removes 2, half up removes 3.
    group = _group("g", 10)
    floor = ChannelSelector()
    half = ChannelSelector(rounding="half_up")
    assert floor.ratio_counts(floor.plans([group]), None, {}, 0.25) == {"g": 8}
    assert half.ratio_counts(half.plans([group]), None, {}, 0.25) == {"g": 7}
    assert math.floor(0.25 * 10 + 1e-9) == 2
