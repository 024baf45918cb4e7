"""Argument checks shared by the whole package (private).

Every check takes `(value, name)` in that order, returns the normalised
value and raises `ValueError` whose message names the argument and the value
received, e.g. "`pruning_ratio` must be a number in [0, 1). Received:
pruning_ratio=1.5".
"""

import math
import numbers


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _fail(name, value, requirement, detail=""):
    raise ValueError(
        f"`{name}` {detail}must be {requirement}. Received: {name}={value!r}"
    )


def check_fraction(
    value,
    name,
    *,
    include_zero=True,
    include_one=False,
    allow_none=False,
    detail="",
):
    """Checks `value` is a real number in [0, 1) (bounds configurable).

    Args:
        value: the value received.
        name: the argument's name, used in the message.
        include_zero: whether 0 is allowed.
        include_one: whether 1 is allowed.
        allow_none: return None for None instead of failing.
        detail: words inserted after the name, e.g. "(the fraction of FLOPs
            to keep) ".

    Returns:
        The value as a float (or None).
    """
    if value is None and allow_none:
        return None
    low = "[0" if include_zero else "(0"
    high = "1]" if include_one else "1)"
    if not _is_real(value) or not math.isfinite(float(value)):
        _fail(name, value, f"a number in {low}, {high}", detail)
    number = float(value)
    low_ok = number >= 0 if include_zero else number > 0
    high_ok = number <= 1 if include_one else number < 1
    if not (low_ok and high_ok):
        _fail(name, value, f"a number in {low}, {high}", detail)
    return number


def check_int(value, name, minimum=None, *, allow=(), note=""):
    """Checks `value` is an integer (not bool) `>= minimum`.

    Args:
        value: the value received.
        name: the argument's name.
        minimum: the smallest allowed value, or None for any integer.
        allow: extra values accepted as they are (e.g. `(-1,)`).
        note: words appended to the requirement, e.g. " (0 would let a
            target empty a group)".

    Returns:
        The value as an int.
    """
    if _is_int(value) and value in allow:
        return int(value)
    if not _is_int(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        extra = "".join(f" or {a}" for a in allow)
        _fail(name, value, f"an integer{bound}{extra}{note}")
    return int(value)


def check_positive(value, name):
    """Checks `value` is a finite real number > 0; returns it as a float."""
    if not _is_real(value) or not math.isfinite(value) or not value > 0:
        _fail(name, value, "a positive number")
    return float(value)


def check_non_negative(value, name):
    """Checks `value` is a finite real number >= 0; returns it as a float."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not (number >= 0 and math.isfinite(number)):
        _fail(name, value, "a non-negative finite number")
    return number


def check_finite(value, name):
    """Checks `value` is a finite real number; returns it as a float."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number):
        _fail(name, value, "a finite number")
    return number


def check_choice(value, name, choices):
    """Checks `value` is one of `choices`; returns it."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        _fail(name, value, f"one of {options}")
    return value
