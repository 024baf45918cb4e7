"""Keras layers with an element mask on their kernel (weight-level sparsity).

`MASKED_CLASSES` maps each supported Keras layer class to its masked
version. Only these exact classes are replaced: a user subclass of
`keras.layers.Dense` may override `call`, and swapping it for
`WeightMaskedDense` would silently change what it computes.
"""

import keras

from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)
from keras_neuronprune.sparsity.layers.weight_masked_conv1d import (
    WeightMaskedConv1D,
)
from keras_neuronprune.sparsity.layers.weight_masked_conv2d import (
    WeightMaskedConv2D,
)
from keras_neuronprune.sparsity.layers.weight_masked_conv3d import (
    WeightMaskedConv3D,
)
from keras_neuronprune.sparsity.layers.weight_masked_dense import (
    WeightMaskedDense,
)
from keras_neuronprune.sparsity.layers.weight_masked_depthwise_conv1d import (
    WeightMaskedDepthwiseConv1D,
)
from keras_neuronprune.sparsity.layers.weight_masked_depthwise_conv2d import (
    WeightMaskedDepthwiseConv2D,
)

MASKED_CLASSES = {
    keras.layers.Dense: WeightMaskedDense,
    keras.layers.Conv1D: WeightMaskedConv1D,
    keras.layers.Conv2D: WeightMaskedConv2D,
    keras.layers.Conv3D: WeightMaskedConv3D,
    keras.layers.DepthwiseConv1D: WeightMaskedDepthwiseConv1D,
    keras.layers.DepthwiseConv2D: WeightMaskedDepthwiseConv2D,
}

__all__ = [
    "MASKED_CLASSES",
    "WeightMaskedConv1D",
    "WeightMaskedConv2D",
    "WeightMaskedConv3D",
    "WeightMaskedDense",
    "WeightMaskedDepthwiseConv1D",
    "WeightMaskedDepthwiseConv2D",
    "WeightMaskedMixin",
]
