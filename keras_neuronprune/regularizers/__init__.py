"""Sparsity regularisers used by training-time structured pruning.

- `RNIRegularizer`: RNI's receding penalty on bounded BN scales.
- `SlimmingRegularizer`: Network Slimming's L1 on BN scales.
- `GrowingRegularizer` + `GRegSchedule`: GReg's growing per-filter L2.
- `attach_regularizer(layer, weight_name, regularizer)`: add one to a built
  layer so that it both trains and serialises.

All regularisers subclass `keras.regularizers.Regularizer` and are
registered serialisable under `keras_neuronprune`.
"""

from keras_neuronprune.regularizers.attach_regularizer import attach_regularizer
from keras_neuronprune.regularizers.greg_schedule import GRegSchedule
from keras_neuronprune.regularizers.growing_regularizer import (
    GrowingRegularizer,
)
from keras_neuronprune.regularizers.rni_regularizer import RNIRegularizer
from keras_neuronprune.regularizers.slimming_regularizer import (
    SlimmingRegularizer,
)

__all__ = [
    "GRegSchedule",
    "GrowingRegularizer",
    "RNIRegularizer",
    "SlimmingRegularizer",
    "attach_regularizer",
]
