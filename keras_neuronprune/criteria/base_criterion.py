"""The contract every structured importance criterion follows."""

import numpy as np


class ScoringContext:
    """What a criterion may look at when it scores channel groups.

    Args:
        model: the model being pruned. During training this is the
            `PrunedModel` (masked layers, gates, BoundedBatchNorm); for
            one-shot scoring it is the user's trained model. Layer names are
            those of the original model, so `group.members[i].layer` can be
            looked up with `model.get_layer`-style helpers.
        groups: list of `ChannelGroup` from
            `keras_neuronprune.channel_groups(original_model)`; only the
            prunable ones are scored.
        data: optional iterable of `(x, y)` batches (calibration data).
        loss: optional Keras loss (callable or name) for gradient criteria.
        step: training step at which scoring happens (for stateful criteria).
    """

    def __init__(self, model, groups, data=None, loss=None, step=0):
        self.model = model
        self.groups = groups
        self.data = data
        self.loss = loss
        self.step = step


class Criterion:
    """Base class of channel-importance criteria.

    A criterion turns a `ScoringContext` into one non-negative score per
    channel of every prunable group: higher means more important. Member
    scores inside a group (the producers and consumers the group couples)
    are combined with `reduction` ("sum", "mean" or "max").

    Subclasses set `requires_data = True` when `score` needs `context.data`
    (calling it without data must raise a `ValueError` naming `data`), and
    implement `score`. A criterion that also trains (a sparsity regulariser)
    implements `regularizer_for(layer)` returning a Keras regulariser, or
    None. Criteria are registered serialisable under `keras_neuronprune`
    and have a string alias resolved by `keras_neuronprune.criteria.get`.
    """

    requires_data = False

    def __init__(self, reduction="sum"):
        if reduction not in ("sum", "mean", "max"):
            raise ValueError(
                "`reduction` must be 'sum', 'mean' or 'max'. "
                f"Received: reduction={reduction!r}"
            )
        self.reduction = reduction

    def score(self, context):
        """Returns a dict group name -> float64 array of shape (size,)."""
        raise NotImplementedError

    def regularizer_for(self, layer):
        return None

    def reduce(self, member_scores):
        """Combines a list of per-channel member score arrays."""
        stacked = np.stack([np.asarray(s, "float64") for s in member_scores])
        if self.reduction == "sum":
            return stacked.sum(axis=0)
        if self.reduction == "mean":
            return stacked.mean(axis=0)
        return stacked.max(axis=0)

    def get_config(self):
        return {"reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def check_finite_scores(scores, group_name):
    """Raises if a criterion produced NaN or infinite scores."""
    scores = np.asarray(scores)
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"Criterion produced non-finite importance scores for channel "
            f"group '{group_name}' ({int(np.sum(~np.isfinite(scores)))} of "
            f"{scores.size} channels). Check the learning rate, the data and "
            "the layer's weights."
        )
    return scores
