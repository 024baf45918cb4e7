"""Pruning schedules: when to update the masks, and to which ratio."""

import keras

from keras_neuronprune.schedules._tfmot import from_tfmot
from keras_neuronprune.schedules._tfmot import is_tfmot_schedule
from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule
from keras_neuronprune.schedules.callable_schedule import CallableSchedule
from keras_neuronprune.schedules.iterative import Iterative
from keras_neuronprune.schedules.one_shot import OneShot
from keras_neuronprune.schedules.polynomial_decay import PolynomialDecay

ALL_OBJECTS = {
    "one_shot": OneShot,
    "iterative": Iterative,
    "polynomial_decay": PolynomialDecay,
}


def serialize(schedule):
    """Returns the Keras config of a schedule."""
    return keras.saving.serialize_keras_object(schedule)


def deserialize(config):
    """Rebuilds a schedule from `serialize`'s output."""
    return keras.saving.deserialize_keras_object(config)


def get(identifier):
    """Returns a schedule from a name, a config or a schedule object.

    Args:
        identifier: None (returns None), a name (`"one_shot"`, `"iterative"`,
            `"polynomial_decay"`, built with default arguments), a config
            dict from `serialize`, a tfmot `PolynomialDecay` or
            `ConstantSparsity` (converted to the keras_neuronprune schedule
            with the same behaviour, so the model saves and loads), or any
            other callable `schedule(step) -> (should_prune, ratio)`
            (wrapped in a `CallableSchedule`).

    Returns:
        None or a `PruningSchedule`.

    Raises:
        ValueError: for an unknown name, an object that is not callable, or
            a tfmot schedule class without an equivalent.
    """
    if identifier is None or isinstance(identifier, PruningSchedule):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in ALL_OBJECTS:
            raise ValueError(
                f"Unknown pruning schedule. Expected one of "
                f"{sorted(ALL_OBJECTS)}. Received: schedule={identifier!r}"
            )
        return ALL_OBJECTS[key]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if is_tfmot_schedule(identifier):
        return from_tfmot(identifier)
    if callable(identifier):
        return CallableSchedule(identifier)
    raise ValueError(
        "`schedule` must be a schedule name, a config dict or a callable "
        "`schedule(step) -> (should_prune, ratio)`. "
        f"Received: schedule={identifier!r}"
    )


__all__ = [
    "CallableSchedule",
    "Iterative",
    "OneShot",
    "PolynomialDecay",
    "PruningSchedule",
    "deserialize",
    "get",
    "serialize",
]
