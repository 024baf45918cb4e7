"""`WeightMaskedDepthwiseConv1D`: weight-sparsity `MaskedDepthwiseConv1D`."""

import keras

from keras_neuronprune.layers.masked_depthwise_conv1d import (
    MaskedDepthwiseConv1D,
)
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedDepthwiseConv1D(WeightMaskedMixin, MaskedDepthwiseConv1D):
    """`MaskedDepthwiseConv1D`, kernel mask only (`WeightMaskedMixin`)."""
