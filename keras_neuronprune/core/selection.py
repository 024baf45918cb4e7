"""Turning importance scores into keep sets (private, NumPy only).

Every prunable group gets a *keep count* and then the highest-scoring
channels up to that count. Keep counts obey, per group: at least
`min_channels` and at least `(1 - max_pruning_ratio) * size` channels; a
multiple of `round_to` (and of the number of conv-groups of a grouped
layer, with the same count kept in every conv-group) unless the whole group
is kept; never more than the channels still kept (masks only ever remove).
"""

import math

import numpy as np


class GroupPlan:
    """Selection constraints and state of one prunable group.

    Args:
        name: group name.
        size: number of channels.
        lower: smallest allowed keep count.
        multiple: keep counts must be multiples of this (or the size).
        chunks: None, or int array (size,) of conv-group ids whose counts
            must be equal.
        kept: boolean array (size,): channels still kept (before this step).
    """

    def __init__(self, name, size, lower, multiple, chunks, kept):
        self.name = name
        self.size = int(size)
        self.lower = int(lower)
        self.multiple = int(multiple)
        self.chunks = chunks
        self.kept = np.asarray(kept, dtype=bool)

    @property
    def kept_count(self):
        return int(self.kept.sum())

    def valid_count(self, n):
        """Smallest allowed keep count >= n (clamped to the kept count)."""
        n = max(int(n), self.lower)
        if n >= self.kept_count:
            return self.kept_count
        n = int(math.ceil(n / self.multiple) * self.multiple)
        return min(n, self.kept_count)

    def select(self, scores, count):
        """Indices (sorted) of the `count` best still-kept channels."""
        scores = np.where(self.kept, np.asarray(scores, "float64"), -np.inf)
        if count >= self.size:
            return np.arange(self.size)
        if self.chunks is None:
            order = _rank(scores)
            return np.sort(order[:count])
        n_chunks = int(self.chunks.max()) + 1
        per_chunk = count // n_chunks
        keep = []
        for chunk in range(n_chunks):
            idx = np.nonzero(self.chunks == chunk)[0]
            order = idx[_rank(scores[idx])]
            keep.append(order[:per_chunk])
        return np.sort(np.concatenate(keep))


def _rank(scores):
    """Indices from best to worst; ties keep the lower index first."""
    return np.lexsort((np.arange(len(scores)), -scores))


def make_plan(group, min_channels, max_pruning_ratio, round_to, kept):
    """Builds the `GroupPlan` of a `ChannelGroup`."""
    size = group.size
    lower = max(
        int(min_channels), int(math.ceil((1.0 - max_pruning_ratio) * size))
    )
    lower = min(lower, size)
    multiple = int(round_to)
    chunks = None
    for _, chunk_ids in group.partitions:
        chunk_ids = np.asarray(chunk_ids)
        n_chunks = int(chunk_ids.max()) + 1
        if n_chunks > 1 and (chunks is None or n_chunks > chunks.max() + 1):
            chunks = chunk_ids
        multiple = math.lcm(multiple, n_chunks)
    return GroupPlan(group.name, size, lower, multiple, chunks, kept)


def local_counts(plans, ratios):
    """Keep counts when each group has its own ratio.

    Args:
        plans: list of `GroupPlan`.
        ratios: dict group name -> pruning ratio in [0, 1).
    """
    counts = {}
    for plan in plans:
        ratio = ratios.get(plan.name, 0.0)
        # The same count as `uniform_keep` (`keep_count`): the removed
        # share is rounded down, so one ratio builds one architecture.
        removed = int(math.floor(ratio * plan.size + 1e-9))
        counts[plan.name] = plan.valid_count(plan.size - removed)
    return counts


def global_counts(plans, scores, ratio, fixed=None):
    """Keep counts of a global ranking removing `ratio` of all channels.

    The channels of every group not in `fixed` compete on their scores; the
    lowest ones are removed (respecting each group's lower bound) until
    `ratio` of the channels of these groups are gone, then every count is
    rounded up to an allowed value.

    Args:
        plans: list of `GroupPlan`.
        scores: dict group name -> scores (size,).
        ratio: fraction of the competing channels to remove.
        fixed: dict group name -> keep count decided elsewhere.
    """
    fixed = fixed or {}
    counts = dict(fixed)
    competing = [p for p in plans if p.name not in fixed]
    total = sum(p.size for p in competing)
    to_remove = int(round(ratio * total))
    values, owners = [], []
    for i, plan in enumerate(competing):
        s = np.asarray(scores[plan.name], "float64")
        s = np.where(plan.kept, s, -np.inf)
        order = np.sort(s)
        removable = plan.size - plan.lower
        values.append(order[:removable])
        owners.append(np.full(removable, i))
    removed = np.zeros(len(competing), dtype=int)
    if values and to_remove > 0:
        values = np.concatenate(values)
        owners = np.concatenate(owners)
        order = np.argsort(values, kind="stable")[:to_remove]
        removed = np.bincount(owners[order], minlength=len(competing))
    for i, plan in enumerate(competing):
        counts[plan.name] = plan.valid_count(plan.size - removed[i])
    return counts


def keep_sets(plans, scores, counts):
    """Dict group name -> sorted kept indices, from counts and scores."""
    return {
        plan.name: plan.select(scores[plan.name], counts[plan.name])
        for plan in plans
    }
