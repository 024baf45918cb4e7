"""Argument checks shared by the regularisers (private)."""

import math


def non_negative_float(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 0 and math.isfinite(number)):
        raise ValueError(
            f"`{name}` must be a non-negative finite number. "
            f"Received: {name}={value!r}"
        )
    return number


def finite_float(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise ValueError(
            f"`{name}` must be a finite number. Received: {name}={value!r}"
        )
    return number
