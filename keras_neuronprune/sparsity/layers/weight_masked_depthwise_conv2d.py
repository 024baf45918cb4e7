"""`WeightMaskedDepthwiseConv2D`: weight-sparsity `MaskedDepthwiseConv2D`."""

import keras

from keras_neuronprune.layers.masked_depthwise_conv2d import (
    MaskedDepthwiseConv2D,
)
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedDepthwiseConv2D(WeightMaskedMixin, MaskedDepthwiseConv2D):
    """`MaskedDepthwiseConv2D`, kernel mask only (`WeightMaskedMixin`)."""
