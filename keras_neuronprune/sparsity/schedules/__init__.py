"""Sparsity schedules: `schedule(step) -> (should_prune, sparsity)`.

`ConstantSparsity` (tfmot's) lives here; gradual pruning uses the shared
`keras_neuronprune.schedules.PolynomialDecay` (tfmot's formula; its ratio is
the sparsity), re-exported for convenience. Any object with tfmot's
signature is accepted by `prune_weights`.
"""

from keras_neuronprune.schedules import PolynomialDecay
from keras_neuronprune.schedules import PruningSchedule
from keras_neuronprune.sparsity.schedules.constant_sparsity import (
    ConstantSparsity,
)

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule"]
