"""`GRegSchedule`: the pick / grow / stabilise state machine of GReg.

A pure function of the training step (plus the pick stored in each
`GrowingRegularizer.selection`): the `greg` criterion's `update(context)`
calls `penalties(step, selection)` every batch and writes the result into
the regularisers; `needs_pick(step)` says when the filters to remove must be
chosen, `done(step)` when the stabilisation is over and the picked filters
can be removed. Because the penalties are recomputed from the step, a
resumed run (with `PrunedModel.pruning_step` restored) continues the
schedule where it stopped.
"""

import math

import keras
import numpy as np

from keras_neuronprune.regularizers.growing_regularizer import KEEP
from keras_neuronprune.regularizers.growing_regularizer import PRUNE
from keras_neuronprune.utils.validation import check_finite
from keras_neuronprune.utils.validation import check_non_negative
from keras_neuronprune.utils.validation import check_positive

_VARIANTS = ("greg1", "greg2")


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class GRegSchedule:
    """Timeline of the GReg penalties.

    GReg-1 (`variant="greg1"`): the filters to remove are picked at
    `start_step` (by L1 norm, by the criterion); from then on, every
    `update_interval` steps their coefficient grows by
    `granularity_prune` up to `upper_limit` (the others stay 0); after the
    limit is reached the penalty is held for `stabilize_interval` steps,
    then `done`.

    GReg-2 (`variant="greg2"`): all coefficients first grow uniformly by
    `granularity_pick` every `update_interval` steps up to
    `upper_limit_pick`, so weights in flat directions shrink more; then the
    filters are picked by their *current* L1 norm; the picked grow from
    `upper_limit_pick` by `granularity_prune` to `upper_limit` while the
    kept are set to `granularity_recover` (a small negative coefficient
    that lets them grow back); then stabilise as GReg-1.

    Defaults are the official code's (`update_interval` 10 as in its README
    commands, 5 in its argument defaults; `stabilize_interval` 10000 as in
    the CIFAR commands).

    Args:
        variant: `"greg1"` or `"greg2"`.
        update_interval: steps between two increments (Ku).
        granularity_prune: increment of the picked filters' coefficient.
        upper_limit: final coefficient of the picked filters.
        granularity_pick: GReg-2 uniform increment.
        upper_limit_pick: GReg-2 uniform limit before picking.
        granularity_recover: GReg-2 coefficient of the kept filters.
        stabilize_interval: steps the final penalty is held.
        start_step: step at which the schedule starts.

    Reference:
        Wang et al., "Neural Pruning via Growing Regularization", ICLR 2021,
        arXiv:2012.09243.
    """

    def __init__(
        self,
        variant="greg1",
        update_interval=10,
        granularity_prune=1e-4,
        upper_limit=1.0,
        granularity_pick=1e-5,
        upper_limit_pick=1e-2,
        granularity_recover=-1e-4,
        stabilize_interval=10000,
        start_step=0,
    ):
        if variant not in _VARIANTS:
            raise ValueError(
                f"`variant` must be one of {_VARIANTS}. "
                f"Received: variant={variant!r}"
            )
        self.variant = variant
        if int(update_interval) != update_interval or update_interval < 1:
            raise ValueError(
                "`update_interval` must be an int >= 1. "
                f"Received: update_interval={update_interval!r}"
            )
        self.update_interval = int(update_interval)
        self.granularity_prune = check_positive(
            granularity_prune, "granularity_prune"
        )
        self.upper_limit = check_positive(upper_limit, "upper_limit")
        self.granularity_pick = check_positive(
            granularity_pick, "granularity_pick"
        )
        self.upper_limit_pick = check_positive(
            upper_limit_pick, "upper_limit_pick"
        )
        if variant == "greg2" and self.upper_limit_pick >= self.upper_limit:
            raise ValueError(
                "`upper_limit_pick` must be below `upper_limit`. Received: "
                f"upper_limit_pick={upper_limit_pick!r}, "
                f"upper_limit={upper_limit!r}"
            )
        self.granularity_recover = check_finite(
            granularity_recover, "granularity_recover"
        )
        self.stabilize_interval = int(
            check_non_negative(stabilize_interval, "stabilize_interval")
        )
        self.start_step = int(check_non_negative(start_step, "start_step"))

    # Step arithmetic ---------------------------------------------------
    def _increments(self, step, since):
        """Increments applied by `step` to a phase that began at `since`."""
        if step < since:
            return 0
        return (step - since) // self.update_interval + 1

    def pick_step(self):
        """The step at which the filters to remove are chosen."""
        if self.variant == "greg1":
            return self.start_step
        n = math.ceil(self.upper_limit_pick / self.granularity_pick - 1e-9)
        return self.start_step + n * self.update_interval

    def limit_step(self):
        """The step at which the picked filters reach `upper_limit`."""
        base = 0.0 if self.variant == "greg1" else self.upper_limit_pick
        n = math.ceil((self.upper_limit - base) / self.granularity_prune - 1e-9)
        return self.pick_step() + (n - 1) * self.update_interval

    def needs_pick(self, step):
        return step >= self.pick_step()

    def done(self, step):
        """Whether the stabilisation is over (the picked can be removed)."""
        return step >= self.limit_step() + self.stabilize_interval

    def phase(self, step):
        """One of "wait", "grow_uniform", "grow", "stabilize", "done"."""
        if step < self.start_step:
            return "wait"
        if step < self.pick_step():
            return "grow_uniform"
        if self.done(step):
            return "done"
        if step >= self.limit_step():
            return "stabilize"
        return "grow"

    def penalties(self, step, selection):
        """Per-filter coefficients at `step` given the pick `selection`.

        Args:
            step: the training step.
            selection: per-filter pick state (-1 undecided, 0 kept,
                1 picked); undecided filters get 0 (GReg-1) or the
                uniform coefficient (GReg-2).

        Returns:
            A float32 NumPy vector.
        """
        selection = np.asarray(selection, "float32")
        out = np.zeros(selection.shape, "float32")
        if step < self.start_step:
            return out
        picked = selection == PRUNE
        kept = selection == KEEP
        if self.variant == "greg2":
            k = self._increments(step, self.start_step)
            out[:] = min(k * self.granularity_pick, self.upper_limit_pick)
            if step < self.pick_step():
                return out
            k = self._increments(step, self.pick_step())
            out[picked] = min(
                self.upper_limit_pick + k * self.granularity_prune,
                self.upper_limit,
            )
            out[kept] = self.granularity_recover
            return out
        k = self._increments(step, self.start_step)
        out[picked] = min(k * self.granularity_prune, self.upper_limit)
        return out

    def get_config(self):
        return {
            "variant": self.variant,
            "update_interval": self.update_interval,
            "granularity_prune": self.granularity_prune,
            "upper_limit": self.upper_limit,
            "granularity_pick": self.granularity_pick,
            "upper_limit_pick": self.upper_limit_pick,
            "granularity_recover": self.granularity_recover,
            "stabilize_interval": self.stabilize_interval,
            "start_step": self.start_step,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
