"""Sparsity schedules: `schedule(step) -> (should_prune, sparsity)`.

`ConstantSparsity` and `PolynomialDecay` take tfmot's argument names
(`target_sparsity`, `initial_sparsity`, `final_sparsity`, `begin_step`,
`end_step`, `frequency`). Any object with tfmot's signature is accepted by
`prune_weights`.
"""

from keras_neuronprune.schedules import PruningSchedule
from keras_neuronprune.sparsity.schedules.constant_sparsity import (
    ConstantSparsity,
)
from keras_neuronprune.sparsity.schedules.polynomial_decay import (
    PolynomialDecay,
)

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule"]
