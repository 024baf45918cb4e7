"""`WeightMaskedDense`: weight-sparsity `MaskedDense`."""

import keras

from keras_neuronprune.layers.masked_dense import MaskedDense
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedDense(WeightMaskedMixin, MaskedDense):
    """`MaskedDense` with a kernel mask only (`WeightMaskedMixin`)."""
