"""Finding and zeroing the optimizer state of individual weights (private).

Keras 3 optimizers keep one slot variable per model variable in plain lists
(`_momentums`, `_velocities`, ...) indexed by the variable's position in
`_trainable_variables`; there is no public accessor. This module is the one
place of `keras_neuronprune.sparsity` that reads those private attributes,
so a Keras change breaks only here.
"""

import keras
import numpy as np


def _innermost(optimizer):
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def slot_variables(optimizer, variable):
    """The optimizer variables that hold per-element state of `variable`."""
    if optimizer is None:
        return []
    optimizer = _innermost(optimizer)
    if not getattr(optimizer, "built", False):
        return []
    trainable = getattr(optimizer, "_trainable_variables", None) or []
    try:
        index = optimizer._get_variable_index(variable)
    except (KeyError, AttributeError):
        index = None
    slots = []
    if index is not None:
        for name, value in vars(optimizer).items():
            if name == "_trainable_variables" or not isinstance(value, list):
                continue
            if len(value) != len(trainable):
                continue
            slot = value[index]
            if (
                isinstance(slot, keras.Variable)
                and slot is not variable
                and tuple(slot.shape) == tuple(variable.shape)
            ):
                slots.append(slot)
    if not slots and hasattr(variable, "path"):
        # Fallback: Keras names slots "<variable path with _>_<slot>".
        prefix = variable.path.replace("/", "_") + "_"
        for slot in optimizer.variables:
            if slot.name.startswith(prefix) and tuple(slot.shape) == tuple(
                variable.shape
            ):
                slots.append(slot)
    return slots


def zero_slots(optimizer, variable, keep):
    """Multiplies every slot of `variable` by the 0/1 array `keep`."""
    keep = np.asarray(keep)
    for slot in slot_variables(optimizer, variable):
        value = np.asarray(slot.numpy())
        slot.assign((value * keep.astype(value.dtype)).astype(value.dtype))


def reset_all_slots(optimizer, variable):
    for slot in slot_variables(optimizer, variable):
        slot.assign(np.zeros(tuple(slot.shape), dtype=slot.dtype))
