"""Turning importance scores into keep sets (private, NumPy only).

`ChannelSelector` is the one place where channel keep sets are chosen: the
structured controller, `uniform_keep`, `sensitivity_analysis`,
`thinet_prune` and the iterative drivers (`iterative_prune`,
`singe_prune`, `hessian_spectral_prune`) all call it. The FLOP-target
search on top of it is in `_flops_target.py`.

Every prunable group gets a *keep count* and then the highest-scoring
channels up to that count. Keep counts obey, per group: at least
`min_channels` and at least `(1 - max_pruning_ratio) * size` channels; a
multiple of `round_to` (and of the number of conv-groups of a grouped
layer, with the same count kept in every conv-group) unless the whole group
is kept; never more than the channels still kept (masks only ever remove).

Where the callers ranked differently before they shared this code, the
difference is an option of the selector, so each keeps its output:
`rounding` (how a ratio becomes a number of removed channels),
`partition` (which conv-group partition is balanced) and `ties` (which of
equally scored channels goes first).
"""

import math

import numpy as np

ROUNDINGS = ("floor", "half_up")
PARTITIONS = ("widest", "first", "none")
TIES = ("keep_lower", "remove_lower")


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
        ties: "keep_lower" (of equal scores the lower index is kept) or
            "remove_lower" (the lower index is removed first).
    """

    def __init__(
        self, name, size, lower, multiple, chunks, kept, ties="keep_lower"
    ):
        self.name = name
        self.size = int(size)
        self.lower = int(lower)
        self.multiple = int(multiple)
        self.chunks = chunks
        self.kept = np.asarray(kept, dtype=bool)
        self.ties = ties

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
            order = _rank(scores, self.ties)
            return np.sort(order[:count])
        n_chunks = int(self.chunks.max()) + 1
        per_chunk = count // n_chunks
        keep = []
        for chunk in range(n_chunks):
            idx = np.nonzero(self.chunks == chunk)[0]
            order = idx[_rank(scores[idx], self.ties)]
            keep.append(order[:per_chunk])
        return np.sort(np.concatenate(keep))


def _rank(scores, ties="keep_lower"):
    """Indices from best to worst; `ties` orders equal scores."""
    index = np.arange(len(scores))
    if ties == "remove_lower":
        index = -index
    return np.lexsort((index, -scores))


def make_plan(
    group,
    min_channels,
    max_pruning_ratio,
    round_to,
    kept,
    partition="widest",
    ties="keep_lower",
):
    """Builds the `GroupPlan` of a `ChannelGroup`.

    `partition`: "widest" balances the conv-group partition with the most
    chunks, "first" the group's first partition, "none" none (no chunk
    constraint and no multiple from the partitions).
    """
    size = group.size
    lower = max(
        int(min_channels), int(math.ceil((1.0 - max_pruning_ratio) * size))
    )
    lower = min(lower, size)
    multiple = int(round_to)
    chunks = None
    partitions = [] if partition == "none" else list(group.partitions)
    for k, (_, chunk_ids) in enumerate(partitions):
        chunk_ids = np.asarray(chunk_ids)
        n_chunks = int(chunk_ids.max()) + 1
        if partition == "first":
            if k == 0:
                chunks = chunk_ids
        elif n_chunks > 1 and (chunks is None or n_chunks > chunks.max() + 1):
            chunks = chunk_ids
        multiple = math.lcm(multiple, n_chunks)
    if partition != "none" and len(partitions) > 1:
        cells = _common_cells([np.asarray(c) for _, c in partitions])
        n_chunks = 1 if chunks is None else int(chunks.max()) + 1
        if cells is not None and int(cells.max()) + 1 > n_chunks:
            chunks = cells
            multiple = math.lcm(int(round_to), int(cells.max()) + 1)
    return GroupPlan(group.name, size, lower, multiple, chunks, kept, ties)


def _common_cells(partitions):
    """Chunk ids of the partitions' common refinement, or None.

    Two grouped layers on one group (a `groups=2` producer feeding a
    `groups=4` consumer) each need equal kept counts in their own chunks;
    equal counts in every cell of the refinement (channels sharing a chunk
    in every partition) satisfy both when the cells are of equal size. For
    unequal cells (partitions that do not nest) None: the widest
    partition alone is balanced.
    """
    keys = np.stack([c.reshape(-1) for c in partitions], axis=1)
    _, cells = np.unique(keys, axis=0, return_inverse=True)
    cells = cells.reshape(-1)
    if len(set(np.bincount(cells).tolist())) != 1:
        return None
    return cells


def removed_count(ratio, size, rounding="floor"):
    """Channels a ratio removes from `size`: floored or rounded half up."""
    if rounding == "half_up":
        return int(math.floor(ratio * size + 0.5))
    # Floored, so one ratio builds one architecture (see `local_counts`).
    return int(math.floor(ratio * size + 1e-9))


def local_counts(plans, ratios, rounding="floor"):
    """Keep counts when each group has its own ratio.

    Args:
        plans: list of `GroupPlan`.
        ratios: dict group name -> pruning ratio in [0, 1).
        rounding: "floor" (the default: the removed share is rounded down,
            the same count as `uniform_keep`, so one ratio builds one
            architecture) or "half_up".
    """
    counts = {}
    for plan in plans:
        ratio = ratios.get(plan.name, 0.0)
        removed = removed_count(ratio, plan.size, rounding)
        counts[plan.name] = plan.valid_count(plan.size - removed)
    return counts


def global_counts(plans, scores, ratio, fixed=None, n_remove=None):
    """Keep counts of a global ranking removing `ratio` of all channels.

    The channels of every group not in `fixed` compete on their scores; the
    lowest ones are removed (respecting each group's lower bound) until
    `ratio` of the channels of these groups are gone, then every count is
    rounded up to an allowed value. Equal scores of different groups go in
    the order of `plans`.

    Args:
        plans: list of `GroupPlan`.
        scores: dict group name -> scores (size,).
        ratio: fraction of the competing channels to remove.
        fixed: dict group name -> keep count decided elsewhere.
        n_remove: number of channels to remove, replacing `ratio`.
    """
    fixed = fixed or {}
    counts = dict(fixed)
    competing = [p for p in plans if p.name not in fixed]
    if n_remove is None:
        total = sum(p.size for p in competing)
        n_remove = int(round(ratio * total))
    values, owners = [], []
    for i, plan in enumerate(competing):
        s = np.asarray(scores[plan.name], "float64")
        s = np.where(plan.kept, s, -np.inf)
        order = np.sort(s)
        removable = plan.size - plan.lower
        values.append(order[:removable])
        owners.append(np.full(removable, i))
    removed = np.zeros(len(competing), dtype=int)
    if values and n_remove > 0:
        values = np.concatenate(values)
        owners = np.concatenate(owners)
        order = np.argsort(values, kind="stable")[:n_remove]
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


class ChannelSelector:
    """Chooses the channels every pruning path keeps (private).

    Args:
        min_channels: channels every group keeps at least.
        max_pruning_ratio: largest share of a group that may go.
        round_to: keep counts are multiples of this (unless whole).
        global_pruning: one ratio removes the lowest-scoring channels of
            all groups together (True) or the same share of each group.
        rounding: how a per-group ratio becomes a removed count: "floor"
            (the controller, `uniform_keep`) or "half_up"
            (`sensitivity_analysis`, `thinet_prune`).
        partition: the conv-group partition kept balanced: "widest" (the
            controller), "first" (`uniform_keep`) or "none"
            (`sensitivity_analysis`, `thinet_prune`, the iterative drivers).
        ties: "keep_lower" (equal scores: the lower channel index is kept,
            groups compete in the given order) or "remove_lower" (the lower
            `(group name, channel index)` goes first: the iterative
            drivers).
    """

    def __init__(
        self,
        min_channels=1,
        max_pruning_ratio=1.0,
        round_to=1,
        global_pruning=False,
        rounding="floor",
        partition="widest",
        ties="keep_lower",
    ):
        for value, name, choices in (
            (rounding, "rounding", ROUNDINGS),
            (partition, "partition", PARTITIONS),
            (ties, "ties", TIES),
        ):
            if value not in choices:
                raise ValueError(
                    f"`{name}` must be one of {choices}. Received: "
                    f"{name}={value!r}"
                )
        self.min_channels = int(min_channels)
        self.max_pruning_ratio = float(max_pruning_ratio)
        self.round_to = int(round_to)
        self.global_pruning = bool(global_pruning)
        self.rounding = rounding
        self.partition = partition
        self.ties = ties

    def plans(self, groups, kept=None):
        """`GroupPlan`s of `groups`; `kept(group)` gives the kept mask."""
        return [
            make_plan(
                g,
                self.min_channels,
                self.max_pruning_ratio,
                self.round_to,
                np.ones(g.size, bool) if kept is None else kept(g),
                self.partition,
                self.ties,
            )
            for g in groups
        ]

    def fixed_counts(self, plans, ratio_dict=None, fixed=None):
        """`fixed` plus the counts of the groups with their own ratio."""
        fixed = dict(fixed or {})
        ratio_dict = ratio_dict or {}
        own = [p for p in plans if p.name in ratio_dict and p.name not in fixed]
        if own:
            fixed.update(local_counts(own, ratio_dict, self.rounding))
        return fixed

    def ratio_counts(self, plans, scores, fixed, ratio, n_remove=None):
        """Keep counts of the groups not in `fixed` for one shared ratio."""
        rest = [p for p in plans if p.name not in fixed]
        if self.global_pruning:
            if self.ties == "remove_lower":
                rest = sorted(rest, key=lambda p: p.name)
            return global_counts(rest, scores, ratio, fixed, n_remove)
        counts = dict(fixed)
        counts.update(
            local_counts(rest, {p.name: ratio for p in rest}, self.rounding)
        )
        return counts

    def counts(self, plans, scores, ratio, ratio_dict=None, fixed=None):
        """Keep counts: `fixed`, then `ratio_dict`, then `ratio` (or none)."""
        fixed = self.fixed_counts(plans, ratio_dict, fixed)
        if ratio is None:
            rest = [p for p in plans if p.name not in fixed]
            return {**fixed, **{p.name: p.kept_count for p in rest}}
        return self.ratio_counts(plans, scores, fixed, ratio)

    def keep_sets(self, plans, scores, counts):
        """Dict group name -> sorted kept indices (every group)."""
        return keep_sets(plans, scores, counts)

    def select(self, groups, scores, ratio=None, n_remove=None):
        """Keep sets of the groups that lose channels (`thin_model` format).

        Args:
            groups: `ChannelGroup`s, all unpruned.
            scores: dict group name -> scores (size,); None: the first
                channels are kept.
            ratio: the pruning ratio (per group, or global).
            n_remove: with `global_pruning`, the number of channels to
                remove instead of a ratio.

        Returns:
            dict group name -> sorted int64 kept indices.
        """
        plans = self.plans(groups)
        if scores is None:
            # Decreasing scores: the first channels are the best.
            scores = {
                p.name: -np.arange(p.size, dtype="float64") for p in plans
            }
        counts = self.ratio_counts(plans, scores, {}, ratio, n_remove)
        keep = self.keep_sets(plans, scores, counts)
        return {
            p.name: np.asarray(keep[p.name], "int64")
            for p in plans
            if counts[p.name] < p.size
        }
