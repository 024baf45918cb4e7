"""Validation of keep sets, and the uniform keep set used by benchmarks."""

import collections.abc

import numpy as np


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


def keep_count(group, ratio, round_to=1):
    """Number of channels kept when removing `ratio` of `group`."""
    n = group.size - int(np.floor(ratio * group.size + 1e-9))
    n = max(n, 1)
    step = int(round_to)
    for _, chunks in group.partitions:
        step = int(np.lcm(step, int(chunks.max()) + 1))
    n = int(np.ceil(n / step) * step)
    return min(n, group.size)


def uniform_keep(model, ratio, round_to=1, allow_inexact=False, groups=None):
    """Keeps the first channels of every prunable group, removing `ratio`.

    Args:
        model: a functional or Sequential model.
        ratio: fraction of each group's channels to remove, in [0, 1).
        round_to: kept counts are rounded up to a multiple of this (e.g. 8
            for XNNPACK / the TFLite GPU delegate).
        allow_inexact: also prune channel-normalised groups.
        groups: precomputed `channel_groups(model)` (optional).

    Returns:
        dict group name -> kept indices (grouped layers keep the same count
        in every conv group).
    """
    from keras_neuronprune.graph import channel_groups

    if not 0 <= ratio < 1:
        raise ValueError(
            f"`ratio` must be in [0, 1). Received: ratio={ratio!r}"
        )
    if int(round_to) < 1:
        raise ValueError(
            f"`round_to` must be a positive integer. Received: "
            f"round_to={round_to!r}"
        )
    if groups is None:
        groups = channel_groups(model, allow_inexact=allow_inexact)
    keep = {}
    for group in groups:
        if not group.prunable:
            continue
        n = keep_count(group, ratio, round_to)
        if n == group.size:
            continue
        keep[group.name] = first_channels(group, n)
    return keep


def first_channels(group, n):
    """The first `n` channels, spread evenly over the group's partitions."""
    if not group.partitions:
        return np.arange(n, dtype=np.int64)
    chunks = group.partitions[0][1]
    n_chunks = int(chunks.max()) + 1
    per = n // n_chunks
    kept = [np.nonzero(chunks == c)[0][:per] for c in range(n_chunks)]
    return np.sort(np.concatenate(kept)).astype(np.int64)
