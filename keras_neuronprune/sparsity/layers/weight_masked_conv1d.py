"""`WeightMaskedConv1D`: weight-sparsity `MaskedConv1D`."""

import keras

from keras_neuronprune.layers.masked_conv1d import MaskedConv1D
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedConv1D(WeightMaskedMixin, MaskedConv1D):
    """`MaskedConv1D` with a kernel mask only (`WeightMaskedMixin`)."""
