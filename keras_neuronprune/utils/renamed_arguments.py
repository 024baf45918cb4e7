"""Deprecated argument spellings, accepted for one release (private).

A renamed argument keeps working through `**kwargs`: `pop_renamed` takes
the old spelling out of them, warns with a `DeprecationWarning` naming the
new one, and refuses both spellings at once.
"""

import warnings

_UNSET = object()


def pop_renamed(
    kwargs, old, new, value, *, where, convert=None, hint="", stacklevel=3
):
    """Returns the value of `new`, read from `kwargs[old]` if given there.

    Args:
        kwargs: the caller's `**kwargs` (the old spelling is popped).
        old: the deprecated argument name.
        new: the argument name that replaces it.
        value: the value passed under the new name (None when not given).
        where: the function or class, for the messages (e.g.
            `"prune_structured"`).
        convert: maps the old value to the new meaning (e.g.
            `lambda keep: 1 - keep`); None keeps it as it is.
        hint: words appended to the warning (e.g. how the meaning
            changed).
        stacklevel: passed to `warnings.warn`; the default points at the
            caller of the function that calls `pop_renamed`.

    Returns:
        `value`, or the (converted) value of the old spelling.

    Raises:
        ValueError: if both spellings are given.
    """
    old_value = kwargs.pop(old, _UNSET)
    if old_value is _UNSET:
        return value
    if value is not None:
        raise ValueError(
            f"Pass either `{new}` or its deprecated spelling `{old}` to "
            f"{where}, not both. Received: {new}={value!r}, "
            f"{old}={old_value!r}"
        )
    how = " (converted as 1 - value)" if convert is not None else ""
    warnings.warn(
        f"`{where}({old}=...)` is deprecated; use `{new}=`{how}.{hint}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if convert is None or old_value is None:
        return old_value
    return convert(old_value)


def reject_unknown(kwargs, where):
    """Raises the TypeError Python gives for an unexpected keyword."""
    if kwargs:
        name = next(iter(kwargs))
        raise TypeError(
            f"{where}() got an unexpected keyword argument {name!r}"
        )
