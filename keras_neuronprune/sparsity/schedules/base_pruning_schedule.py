"""`PruningSchedule`: when to prune and to which sparsity."""

import numbers

import numpy as np


class PruningSchedule:
    """Base class of sparsity schedules, with tfmot's calling convention.

    A schedule is called with the training step and returns
    `(should_prune, sparsity)`: whether masks are updated at this step and
    the target fraction of zero weights. `prune_weights` accepts any object
    with this signature (tfmot's schedules included, without importing
    tfmot); to be saved with a model it must also have `get_config` and be
    registered serialisable.
    """

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def final_sparsity(self):
        """The sparsity the schedule ends at."""
        raise NotImplementedError

    def _in_range_and_turn(self, step):
        in_range = step >= self.begin_step and (
            self.end_step == -1 or step <= self.end_step
        )
        return in_range and (step - self.begin_step) % self.frequency == 0


def validate_sparsity(value, name):
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not np.isfinite(value)
        or not 0.0 <= float(value) < 1.0
    ):
        raise ValueError(
            f"`{name}` must be a number in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def validate_int(value, name, minimum, allow_minus_one=False):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and allow_minus_one and value == -1:
        return -1
    if not ok or value < minimum:
        extra = " or -1" if allow_minus_one else ""
        raise ValueError(
            f"`{name}` must be an int >= {minimum}{extra}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def evaluate_schedule(schedule, step):
    """Calls any tfmot-style schedule and returns `(bool, float)`."""
    should_prune, sparsity = schedule(step)
    return bool(np.asarray(should_prune)), float(np.asarray(sparsity))
