"""Base of the criteria that score on calibration batches (private)."""

import time

from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.structures import structure_slices


class CalibratedCriterion(Criterion):
    """A criterion that reads `min_samples` to `max_samples` samples.

    Subclasses implement `score_batches(context, batches, groups)` (the
    validated calibration batches and the prunable groups), set
    `needs_loss = True` when they differentiate `context.loss` (their
    batches then need targets too) and list their constructor arguments
    in `config_keys`, in signature order, for `get_config`. `score` keeps
    its wall time in `last_cost_seconds`.

    Args:
        reduction: "sum", "mean" or "max" over a group's members.
        min_samples: fewest calibration samples accepted (>= 1).
        max_samples: use at most this many samples (None: all).

    Raises:
        ValueError: for `min_samples < 1`.
    """

    requires_data = True
    needs_loss = False
    # How the "needs a loss" message says what the loss is for.
    loss_use = "a loss to differentiate"
    config_keys = ("min_samples", "max_samples")

    def __init__(self, reduction="sum", min_samples=32, max_samples=None):
        super().__init__(reduction)
        self.min_samples = check_count(min_samples, "min_samples")
        self.max_samples = max_samples
        self.last_cost_seconds = None

    def score(self, context):
        start = time.perf_counter()
        batches = self.calibration(context)
        scores = self.score_batches(
            context, batches, self.prunable_groups(context)
        )
        self.last_cost_seconds = time.perf_counter() - start
        return scores

    def score_batches(self, context, batches, groups):
        """Scores `groups` on `batches`; returns `score`'s dict."""
        raise NotImplementedError

    def calibration(self, context):
        """The validated calibration batches of `context` (a list).

        Raises:
            ValueError: without `context.loss` where one is needed, and
                from `calibration_batches` for missing or bad data.
        """
        name = type(self).__name__
        if self.needs_loss and context.loss is None:
            raise ValueError(
                f"{name} needs {self.loss_use}: pass "
                "`ScoringContext(..., loss=...)`. Received: loss=None"
            )
        return calibration_batches(
            context.data,
            context.model,
            name,
            min_samples=self.min_samples,
            max_samples=self.max_samples,
            needs_targets=self.needs_loss,
        )


def check_count(value, name):
    """`int(value)`, which must be >= 1 (a count of samples or steps)."""
    if int(value) < 1:
        raise ValueError(f"`{name}` must be >= 1. Received: {name}={value}")
    return int(value)


def group_structure_slices(model, groups):
    """The `structure_slices` of every group, and the groups with none.

    Returns:
        `(slices, unsupported)`: dict group name -> list of slices (empty
        where the group's structures cannot be read) and the list of those
        groups' names.
    """
    slices, unsupported = {}, []
    for group in groups:
        try:
            slices[group.name] = structure_slices(model, group)
        except ValueError:
            slices[group.name] = []
        if not slices[group.name]:
            unsupported.append(group.name)
    return slices, unsupported
