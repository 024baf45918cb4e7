"""Argument checks and schedule evaluation shared by `sparsity` (private)."""

import numbers

import numpy as np


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
