"""Validation of keep sets, and the uniform keep set used by benchmarks."""

import collections.abc

import numpy as np

from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


def resolve_keep(graph, keep):
    """Validates `keep` against `graph` and returns {group index: indices}.

    Raises:
        TypeError: `keep` is not a mapping.
        ValueError: unknown group, unprunable group, or bad indices.
    """
    if not isinstance(keep, collections.abc.Mapping):
        raise TypeError(
            "`keep` must be a dict mapping channel-group names to the sorted "
            f"channel indices to keep. Received: keep={keep!r}"
        )
    by_name = {g.name: i for i, g in enumerate(graph.groups)}
    resolved = {}
    for name, indices in keep.items():
        index = by_name.get(name)
        if index is None:
            prunable = [g.name for g in graph.groups if g.prunable]
            raise ValueError(
                f"keep names a channel group that does not exist: {name!r}. "
                f"The model's prunable groups are: {prunable[:20]}"
                + (" ..." if len(prunable) > 20 else "")
            )
        group = graph.groups[index]
        arr = group.check_keep(indices)
        if arr.size == group.size:
            continue
        if not group.prunable:
            raise ValueError(
                f"Channel group {name!r} is not prunable: {group.reason}. "
                "Remove it from `keep`."
            )
        resolved[index] = arr
    return resolved


def _uniform_selector(round_to):
    # `uniform_keep`'s counts floor the removed share and balance every
    # conv-group partition of the group (see `ChannelSelector`).
    from keras_neuronprune.core.selection import ChannelSelector

    return ChannelSelector(round_to=round_to, partition="first")


def keep_count(group, ratio, round_to=1):
    """Number of channels kept when removing `ratio` of `group`."""
    selector = _uniform_selector(round_to)
    plans = selector.plans([group])
    return selector.ratio_counts(plans, None, {}, ratio)[group.name]


def uniform_keep(
    model,
    pruning_ratio=None,
    round_to=1,
    allow_inexact=False,
    groups=None,
    **kwargs,
):
    """Keeps the first channels of every prunable group, removing a share.

    Args:
        model: a functional or Sequential model.
        pruning_ratio: fraction of each group's channels to remove, in
            [0, 1) (`ratio=` is its deprecated spelling).
        round_to: kept counts are rounded up to a multiple of this (e.g. 8
            for XNNPACK / the TFLite GPU delegate).
        allow_inexact: also prune channel-normalised groups.
        groups: precomputed `channel_groups(model)` (optional).

    Returns:
        dict group name -> kept indices (grouped layers keep the same count
        in every conv group).

    Raises:
        ValueError: for a `pruning_ratio` outside [0, 1) or a `round_to`
            below 1.

    Example:
        >>> keep = uniform_keep(model, 0.5, round_to=8)
        >>> thin, report = thin_model(model, keep)
    """
    from keras_neuronprune.graph import channel_groups

    pruning_ratio = pop_renamed(
        kwargs, "ratio", "pruning_ratio", pruning_ratio, where="uniform_keep"
    )
    reject_unknown(kwargs, "uniform_keep")
    check_fraction(pruning_ratio, "pruning_ratio")
    round_to = check_int(round_to, "round_to", 1)
    if groups is None:
        groups = channel_groups(model, allow_inexact=allow_inexact)
    prunable = [g for g in groups if g.prunable]
    return _uniform_selector(round_to).select(prunable, None, pruning_ratio)


def first_channels(group, n):
    """The first `n` channels, spread evenly over the group's partitions."""
    plan = _uniform_selector(1).plans([group])[0]
    return plan.select(-np.arange(group.size, dtype="float64"), n).astype(
        np.int64
    )
