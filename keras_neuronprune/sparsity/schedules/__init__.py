"""Sparsity schedules with tfmot's `schedule(step) -> (prune, sparsity)`."""

from keras_neuronprune.sparsity.schedules.base_pruning_schedule import (
    PruningSchedule,
)
from keras_neuronprune.sparsity.schedules.constant_sparsity import (
    ConstantSparsity,
)
from keras_neuronprune.sparsity.schedules.polynomial_decay import (
    PolynomialDecay,
)

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule"]
