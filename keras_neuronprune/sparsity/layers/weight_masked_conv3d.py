"""`WeightMaskedConv3D`: weight-sparsity `MaskedConv3D`."""

import keras

from keras_neuronprune.layers.masked_conv3d import MaskedConv3D
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedConv3D(WeightMaskedMixin, MaskedConv3D):
    """`MaskedConv3D` with a kernel mask only (`WeightMaskedMixin`)."""
