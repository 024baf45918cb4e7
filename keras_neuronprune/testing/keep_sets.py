"""Random keep sets for channel groups (test helper)."""

import math

import numpy as np


def _cells(group):
    """Splits a group's channels into cells that every partition respects.

    A cell is a maximal set of group channels that share the same chunk in
    every partition of the group. Keeping the same fraction of every cell
    keeps the same number of channels in every chunk of every partition, as
    long as each partition's chunks have equal sizes (true for grouped
    convolutions and GroupNormalization).

    Returns:
        A list of int arrays (group-channel indices), or `None` when no
        proportional keep set can satisfy the partitions.
    """
    size = int(group.size)
    partitions = list(getattr(group, "partitions", None) or [])
    if not partitions:
        return [np.arange(size)]
    chunk_ids = []
    for _, ids in partitions:
        ids = np.asarray(ids).reshape(-1)
        if ids.shape[0] != size:
            return None
        _, counts = np.unique(ids, return_counts=True)
        if len(set(counts.tolist())) != 1:
            return None
        chunk_ids.append(ids)
    keys = np.stack(chunk_ids, axis=1)
    _, cell_of = np.unique(keys, axis=0, return_inverse=True)
    cell_of = cell_of.reshape(-1)
    return [np.flatnonzero(cell_of == c) for c in range(cell_of.max() + 1)]


def _keep_fraction(cell_sizes, rng, low, high):
    """Picks `m / g` (g = gcd of the cell sizes) close to `1 - U(low, high)`.

    Returns:
        `(m, g)`, or `None` when nothing can be removed (g == 1).
    """
    g = 0
    for s in cell_sizes:
        g = math.gcd(g, int(s))
    if g <= 1:
        return None
    target_removed = rng.uniform(low, high)
    candidates = np.arange(1, g)  # kept numerators: keep >= 1, remove >= 1
    removed = 1.0 - candidates / g
    inside = candidates[(removed >= low - 1e-9) & (removed <= high + 1e-9)]
    if inside.size:
        return int(rng.choice(inside)), g
    best = candidates[np.argmin(np.abs(removed - target_removed))]
    return int(best), g


def random_keep(groups, rng=None, low=0.3, high=0.6):
    """Draws a random keep set that removes `low`..`high` of every group.

    Every prunable group loses a random fraction in `[low, high]` of its
    channels (the closest feasible fraction when the group's partitions
    make that range impossible), keeps at least one channel, and keeps the
    same number of channels in every chunk of every entry of
    `group.partitions` (grouped convolutions, GroupNormalization). Groups
    that are not prunable, and groups that cannot lose any channel under
    their partitions (e.g. one channel per chunk), are left out, which
    means "keep everything".

    Args:
        groups: the list returned by `keras_neuronprune.channel_groups`.
        rng: a `numpy.random.Generator`, an int seed, or `None`.
        low: smallest fraction of a group's channels to remove.
        high: largest fraction of a group's channels to remove.

    Returns:
        A dict mapping group name to a sorted int64 array of the group
        channel indices to keep, ready for `keras_neuronprune.thin_model`.

    Raises:
        ValueError: if `low`/`high` are not `0 <= low <= high < 1`.

    Example:

    ```python
    groups = keras_neuronprune.channel_groups(model)
    keep = keras_neuronprune.testing.random_keep(groups, rng=0)
    thin, report = keras_neuronprune.thin_model(model, keep)
    ```
    """
    if not (0.0 <= low <= high < 1.0):
        raise ValueError(
            "`low` and `high` must satisfy 0 <= low <= high < 1. "
            f"Received: low={low}, high={high}"
        )
    rng = np.random.default_rng(rng)
    keep = {}
    for group in groups:
        if not group.prunable or int(group.size) < 2:
            continue
        cells = _cells(group)
        if cells is None:
            continue
        fraction = _keep_fraction([len(c) for c in cells], rng, low, high)
        if fraction is None:
            continue
        m, g = fraction
        kept = []
        for cell in cells:
            n_keep = len(cell) * m // g
            kept.append(rng.choice(cell, size=n_keep, replace=False))
        keep[group.name] = np.sort(np.concatenate(kept)).astype("int64")
    return keep
