"""`BaseMethod`: the per-algorithm part of `WeightPruningController`."""

import numpy as np


class BaseMethod:
    """One weight-pruning algorithm, driven by `WeightPruningController`.

    The controller owns the configuration, the masked layers and the shared
    operations (evaluating the schedule, turning scores into masks, writing
    masks, zeroing pruned weights and their optimizer slots); a method only
    decides *when* and *from which scores* masks change. Methods hold no
    state that must survive saving: everything lives in layer weights.

    Class attributes:
        name: the `method=` string.
        needs_data: whether `prune_weights` must receive `data`.
        needs_loss: whether a loss is needed (gradients).
        uses_schedule: whether a sparsity schedule drives the method.
        default_distribution: how a global target is spread over layers.
        distributions: the accepted `distribution=` values.
        supports_patterns: whether block / m-by-n patterns apply.
        learned_mask: whether layers learn their masks (SCL).
        default_update_frequency: steps between updates when
            `update_frequency=None`.
    """

    name = None
    needs_data = False
    needs_loss = False
    uses_schedule = True
    default_distribution = "uniform"
    distributions = ("uniform", "erk", "global")
    supports_patterns = True
    learned_mask = False
    default_update_frequency = 100

    def __init__(self, controller):
        self.controller = controller
        self.last_scores = {}

    def initialize(self, model, layers):
        """Called once by `prune_weights`, before any training."""

    def on_train_begin(self, model, layers):
        """Called when `fit` starts, after the controller's checks."""

    def on_train_batch_begin(self, model, layers, step):
        """Called before the optimizer step number `step`."""

    def on_train_batch_end(self, model, layers, step):
        """Called after the optimizer step number `step`."""

    def scalars(self, model, layers):
        return {}

    def histograms(self, model, layers):
        if self.last_scores:
            return {
                name: np.asarray(score).reshape(-1)
                for name, score in self.last_scores.items()
            }
        out = {}
        for name, layer in layers:
            kernel = layer.masked_kernel()
            mask = layer.current_mask()
            out[name] = np.abs(kernel[mask > 0]).reshape(-1)
        return out


def magnitude_scores(layer, keep_pruned=True):
    """`|w|` of the masked kernel, with pruned entries at -inf."""
    scores = np.abs(layer.masked_kernel()).astype("float64")
    if keep_pruned:
        scores[layer.current_mask() == 0] = -np.inf
    return scores
