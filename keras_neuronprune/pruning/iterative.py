"""Iterative one-shot pruning: score, thin the global lowest, tune; repeat."""

import math

import keras

from keras_neuronprune.core.selection import ChannelSelector
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


def global_keep(groups, scores, n_remove, min_channels=1):
    """Keep sets removing the `n_remove` lowest-scoring channels overall.

    Of equal scores, the lower `(group name, channel index)` goes first.

    Args:
        groups: list of `ChannelGroup` (only prunable ones are touched).
        scores: dict group name -> array `(size,)`.
        n_remove: number of channels to remove in total.
        min_channels: channels every group keeps at least.

    Returns:
        `(keep, removed)`: keep dict for `thin_model` and the number of
        channels actually removed (fewer when `min_channels` binds).
    """
    selector = ChannelSelector(
        min_channels=min_channels,
        global_pruning=True,
        partition="none",
        ties="remove_lower",
    )
    competing = [g for g in groups if g.prunable and g.name in scores]
    sizes = {g.name: g.size for g in competing}
    keep = selector.select(competing, scores, n_remove=int(n_remove))
    removed = sum(sizes[name] - len(kept) for name, kept in keep.items())
    return {name: kept.tolist() for name, kept in keep.items()}, removed


def default_fine_tune(loss, learning_rate=1e-3, steps=10):
    """A `fine_tune(model, batches)` that runs `steps` SGD steps."""

    def fine_tune(model, batches):
        if steps <= 0:
            return model
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
            loss=loss,
        )
        for i in range(steps):
            x, y = batches[i % len(batches)]
            model.train_on_batch(x, y)
        return model

    return fine_tune


def criterion_score_fn(criterion, batches, loss):
    """A `score_fn(model, groups)` for `iterative_prune` from a criterion."""
    from keras_neuronprune.criteria.base_criterion import ScoringContext

    def score_fn(current, groups):
        return criterion.score(ScoringContext(current, groups, batches, loss))

    return score_fn


def iterative_prune(
    model,
    data=None,
    score_fn=None,
    pruning_ratio=None,
    iterations=None,
    fine_tune=None,
    min_channels=1,
    **kwargs,
):
    """Score, prune a few channels globally, fine-tune; repeat.

    Args:
        model: the starting model (not modified: the first thinning makes
            a copy).
        data: list of `(x, y)` batches, passed to `fine_tune` (`batches=`
            is its deprecated spelling).
        score_fn: `score_fn(model, groups) -> {group name: scores}`.
        pruning_ratio: fraction of all prunable channels to remove by the
            end, in [0, 1) (`ratio=` is its deprecated spelling).
        iterations: number of prune steps the removal is spread over.
        fine_tune: `fine_tune(model, data) -> model or None`, called
            after every prune step.
        min_channels: channels each group keeps at least.

    Returns:
        `(new_model, history)`: the thinned model and one dict per step
        (`removed`, `params`).

    Raises:
        ValueError: for a bad `pruning_ratio` or `iterations`.

    Example:
        >>> thin, history = iterative_prune(
        ...     model, batches, score_fn, pruning_ratio=0.3, iterations=3)
    """
    from keras_neuronprune.graph import channel_groups
    from keras_neuronprune.rewrite import thin_model

    where = "iterative_prune"
    data = pop_renamed(kwargs, "batches", "data", data, where=where)
    pruning_ratio = pop_renamed(
        kwargs, "ratio", "pruning_ratio", pruning_ratio, where=where
    )
    reject_unknown(kwargs, where)
    check_fraction(pruning_ratio, "pruning_ratio")
    iterations = check_int(int(iterations), "iterations", 1)
    groups = channel_groups(model)
    total = sum(g.size for g in groups if g.prunable)
    target = int(round(pruning_ratio * total))
    current, _ = thin_model(model, {})
    removed_so_far = 0
    history = []
    for step in range(iterations):
        left = target - removed_so_far
        if left <= 0:
            break
        n = math.ceil(left / (iterations - step))
        groups = channel_groups(current)
        scores = score_fn(current, groups)
        keep, count = global_keep(groups, scores, n, min_channels)
        if count == 0:
            break
        current, _ = thin_model(current, keep)
        removed_so_far += count
        if fine_tune is not None:
            replaced = fine_tune(current, data)
            if replaced is not None:
                current = replaced
        history.append(
            {
                "step": step,
                "removed": count,
                "params": current.count_params(),
            }
        )
    return current, history
