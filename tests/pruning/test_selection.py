import numpy as np
import pytest

from keras_neuronprune.core import selection as _selection
from keras_neuronprune.graph.channel_group import ChannelGroup


def _group(name, size, partitions=()):
    return ChannelGroup(name, size, True, True, None, [], list(partitions))


def _plan(size, **kwargs):
    options = dict(min_channels=1, max_pruning_ratio=1.0, round_to=1)
    options.update(kwargs)
    kept = options.pop("kept", np.ones(size, bool))
    partitions = options.pop("partitions", ())
    return _selection.make_plan(
        _group("g", size, partitions), kept=kept, **options
    )


def test_local_counts_round_to_nearest_channel():
    plan = _plan(10)
    assert _selection.local_counts([plan], {"g": 0.5}) == {"g": 5}
    assert _selection.local_counts([plan], {"g": 0.33}) == {"g": 7}
    assert _selection.local_counts([plan], {"g": 0.0}) == {"g": 10}


@pytest.mark.parametrize(
    "kwargs, ratio, expected",
    [
        ({"min_channels": 3}, 0.9, 3),
        ({"max_pruning_ratio": 0.5}, 0.9, 5),
        ({"round_to": 4}, 0.5, 8),
        ({"round_to": 4}, 0.1, 10),  # keeping everything needs no rounding
    ],
)
def test_keep_count_constraints(kwargs, ratio, expected):
    plan = _plan(10, **kwargs)
    assert _selection.local_counts([plan], {"g": ratio}) == {"g": expected}


def test_select_keeps_best_and_breaks_ties_by_index():
    plan = _plan(6)
    keep = plan.select(np.array([1.0, 5.0, 1.0, 3.0, 1.0, 0.5]), 3)
    np.testing.assert_array_equal(keep, [0, 1, 3])


def test_removed_channels_stay_removed():
    kept = np.array([True, False, True, True, True, True])
    plan = _plan(6, kept=kept)
    # Channel 1 has the best score but was removed earlier.
    keep = plan.select(np.array([1, 9, 2, 3, 4, 5.0]), 4)
    np.testing.assert_array_equal(keep, [2, 3, 4, 5])
    # A lower ratio than already reached never regrows channels.
    assert _selection.local_counts([plan], {"g": 0.0}) == {"g": 5}


def test_partitions_keep_equal_counts_per_chunk():
    chunks = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    plan = _plan(8, partitions=[("gconv", chunks)])
    assert plan.multiple == 2
    counts = _selection.local_counts([plan], {"g": 0.4})
    assert counts == {"g": 6}
    scores = np.array([9, 8, 7, 6, 1, 2, 3, 4.0])
    keep = plan.select(scores, counts["g"])
    np.testing.assert_array_equal(np.bincount(chunks[keep]), [3, 3])
    np.testing.assert_array_equal(keep, [0, 1, 2, 5, 6, 7])


def test_global_counts_rank_across_groups():
    a = _selection.make_plan(_group("a", 4), 1, 1.0, 1, np.ones(4, bool))
    b = _selection.make_plan(_group("b", 4), 1, 1.0, 1, np.ones(4, bool))
    scores = {
        "a": np.array([0.1, 0.2, 0.3, 0.9]),
        "b": np.array([5, 6, 7, 8.0]),
    }
    counts = _selection.global_counts([a, b], scores, 0.5)
    assert counts == {"a": 1, "b": 3}
    keep = _selection.keep_sets([a, b], scores, counts)
    np.testing.assert_array_equal(keep["a"], [3])
    np.testing.assert_array_equal(keep["b"], [1, 2, 3])


def test_global_counts_respect_lower_bounds_and_fixed_groups():
    a = _selection.make_plan(_group("a", 4), 2, 1.0, 1, np.ones(4, bool))
    b = _selection.make_plan(_group("b", 4), 1, 1.0, 1, np.ones(4, bool))
    scores = {"a": np.zeros(4), "b": np.arange(4.0) + 1}
    counts = _selection.global_counts([a, b], scores, 0.75)
    # 6 of 8 asked, but only 2 + 3 may go: both groups stop at their floor.
    assert counts == {"a": 2, "b": 1}
    counts = _selection.global_counts([a, b], scores, 0.5, fixed={"a": 4})
    assert counts == {"a": 4, "b": 2}
