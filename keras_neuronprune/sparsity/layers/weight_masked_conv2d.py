"""`WeightMaskedConv2D`: weight-sparsity `MaskedConv2D`."""

import keras

from keras_neuronprune.layers.masked_conv2d import MaskedConv2D
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedConv2D(WeightMaskedMixin, MaskedConv2D):
    """`MaskedConv2D` with a kernel mask only (`WeightMaskedMixin`)."""
