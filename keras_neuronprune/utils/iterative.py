"""Shared loop: score, remove the globally least important channels, tune."""

import math

import keras
import numpy as np


def global_keep(groups, scores, n_remove, min_channels=1):
    """Keep sets removing the `n_remove` lowest-scoring channels overall.

    Args:
        groups: list of `ChannelGroup` (only prunable ones are touched).
        scores: dict group name -> array `(size,)`.
        n_remove: number of channels to remove in total.
        min_channels: channels every group keeps at least.

    Returns:
        `(keep, removed)`: keep dict for `thin_model` and the number of
        channels actually removed (fewer when `min_channels` binds).
    """
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


def iterative_prune(
    model,
    batches,
    score_fn,
    ratio,
    iterations,
    fine_tune=None,
    min_channels=1,
):
    """Score, prune a few channels globally, fine-tune; repeat.

    Args:
        model: the starting model (not modified: the first thinning makes
            a copy).
        batches: list of `(x, y)` batches.
        score_fn: `score_fn(model, groups) -> {group name: scores}`.
        ratio: fraction of all prunable channels to remove by the end.
        iterations: number of prune steps the removal is spread over.
        fine_tune: `fine_tune(model, batches) -> model or None`, called
            after every prune step.
        min_channels: channels each group keeps at least.

    Returns:
        `(new_model, history)`: the thinned model and one dict per step
        (`removed`, `params`).
    """
    from keras_neuronprune.graph import channel_groups
    from keras_neuronprune.rewrite import thin_model

    if not 0 <= ratio < 1:
        raise ValueError(f"`ratio` must be in [0, 1). Received: ratio={ratio}")
    if int(iterations) < 1:
        raise ValueError(
            f"`iterations` must be >= 1. Received: iterations={iterations}"
        )
    groups = channel_groups(model)
    total = sum(g.size for g in groups if g.prunable)
    target = int(round(ratio * total))
    current, _ = thin_model(model, {})
    removed_so_far = 0
    history = []
    for step in range(int(iterations)):
        left = target - removed_so_far
        if left <= 0:
            break
        n = math.ceil(left / (int(iterations) - step))
        groups = channel_groups(current)
        scores = score_fn(current, groups)
        keep, count = global_keep(groups, scores, n, min_channels)
        if count == 0:
            break
        current, _ = thin_model(current, keep)
        removed_so_far += count
        if fine_tune is not None:
            replaced = fine_tune(current, batches)
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
