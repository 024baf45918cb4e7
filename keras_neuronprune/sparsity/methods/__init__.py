"""The weight-pruning algorithms behind `prune_weights(method=...)`.

Every method is a configured object, e.g.
`prune_weights(model, method=RigLMethod(end_step=3000, drop_fraction=0.3),
sparsity=0.9, data=ds)`; the string names (`method="rigl"`) give the
default-configured method.
"""

import warnings

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.base_method import MethodContext
from keras_neuronprune.sparsity.methods.fixed_mask_method import FixedMaskMethod
from keras_neuronprune.sparsity.methods.iss_p_method import IssPMethod
from keras_neuronprune.sparsity.methods.magnitude_method import MagnitudeMethod
from keras_neuronprune.sparsity.methods.nnrelief_method import NNReliefMethod
from keras_neuronprune.sparsity.methods.rigl_method import RigLMethod
from keras_neuronprune.sparsity.methods.scl_method import SclMethod
from keras_neuronprune.sparsity.methods.snip_method import SnipMethod

METHODS = {
    cls.name: cls
    for cls in (
        MagnitudeMethod,
        SnipMethod,
        RigLMethod,
        SclMethod,
        IssPMethod,
        NNReliefMethod,
        FixedMaskMethod,
    )
}

# The hyper-parameters `prune_weights` used to take itself, with the
# defaults it had: a method-specific one left at its default is ignored by
# the other methods; the ones every method used to accept (and most
# ignored) are ignored where they do not apply.
_OLD_DEFAULTS = {
    "threshold": "fraction",
    "quality": None,
    "drop_fraction": 0.3,
    "drop_fraction_decay": "cosine",
    "shrink_ratio": 0.95,
    "penalty": 0.1,
    "penalty_rate": 0.1,
    "mask_init": 0.05,
}
_FORMERLY_SHARED = ("update_frequency", "end_step", "num_batches", "seed")
METHOD_ARGUMENTS = tuple(_OLD_DEFAULTS) + _FORMERLY_SHARED


def _applies_to(name):
    users = [m for m, cls in METHODS.items() if name in cls.argument_names()]
    return " or ".join(repr(m) for m in users)


def _forwarded(cls, kwargs):
    """The deprecated keyword arguments that `cls`'s constructor takes."""
    accepted = cls.argument_names()
    forwarded = {}
    for name, value in kwargs.items():
        if name in accepted:
            # update_frequency=None meant "the method's default".
            if not (name == "update_frequency" and value is None):
                forwarded[name] = value
        elif name not in _FORMERLY_SHARED and value != _OLD_DEFAULTS[name]:
            raise ValueError(
                f"`{name}` only applies to method={_applies_to(name)}. "
                f"Received: {name}={value!r} with method={cls.name!r}"
            )
    return forwarded


def get_method(method, kwargs=None, *, where, names=None, warn=True):
    """Returns a fresh method object for `method=` (a name or an object).

    Args:
        method: a method name (`"rigl"`), a `BaseMethod` subclass or an
            instance (copied, so its runtime state is never shared).
        kwargs: deprecated hyper-parameters given to `where` itself (e.g.
            `drop_fraction=0.3`); forwarded to the method's constructor.
        where: the caller, for the messages (`"prune_weights"`).
        names: the accepted names (default: every method's).
        warn: whether `kwargs` raise a `DeprecationWarning` (not for old
            saved configurations).

    Returns:
        A `BaseMethod` instance.

    Raises:
        ValueError: for an unknown name, a hyper-parameter the method does
            not take, or `kwargs` together with a method object.
    """
    kwargs = dict(kwargs or {})
    names = tuple(METHODS) if names is None else tuple(names)
    if isinstance(method, BaseMethod):
        if kwargs:
            given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise ValueError(
                f"Pass the hyper-parameters of {type(method).__name__} to "
                f"its constructor, not to {where}. Received: method="
                f"{method!r} and {given}"
            )
        return method.fresh_copy()
    if isinstance(method, type) and issubclass(method, BaseMethod):
        method = method.name
    if not isinstance(method, str) or method not in names:
        raise ValueError(
            f"`method` must be one of {sorted(names)} or a method object "
            "(keras_neuronprune.sparsity.methods). "
            f"Received: method={method!r}"
        )
    cls = METHODS[method]
    forwarded = _forwarded(cls, kwargs)
    if kwargs and warn:
        given = ", ".join(f"{k}={v!r}" for k, v in forwarded.items())
        unused = sorted(set(kwargs) - set(forwarded))
        note = (
            f" ({', '.join(unused)}: no effect with method={method!r})"
            if unused
            else ""
        )
        warnings.warn(
            f"`{where}({', '.join(f'{k}=' for k in kwargs)}...)` is "
            "deprecated: configure the method object instead, e.g. "
            f"method={cls.__name__}({given}){note}.",
            DeprecationWarning,
            stacklevel=3,
        )
    return cls(**forwarded)


__all__ = [
    "BaseMethod",
    "FixedMaskMethod",
    "IssPMethod",
    "METHODS",
    "MagnitudeMethod",
    "MethodContext",
    "NNReliefMethod",
    "RigLMethod",
    "SclMethod",
    "SnipMethod",
    "get_method",
]
