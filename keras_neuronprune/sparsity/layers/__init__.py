"""Keras layers with an element mask on their kernel (weight-level sparsity).

The `WeightMasked*` classes are the masked layers of
`keras_neuronprune.layers` (one base, `MaskedLayerMixin`) with the kernel
mask on and no channel masks. Only the exact Keras classes of the one
masked-layer registry are replaced: a user subclass of `keras.layers.Dense`
may override `call`, and swapping it for `WeightMaskedDense` would silently
change what it computes.
"""

import warnings

from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WEIGHT_MASKED_CLASSES,
)
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


def __getattr__(name):
    if name == "MASKED_CLASSES":
        warnings.warn(
            "`keras_neuronprune.sparsity.layers.MASKED_CLASSES` is "
            "deprecated; use `keras_neuronprune.layers.masked_layer_spec` "
            "(the one masked-layer registry).",
            DeprecationWarning,
            stacklevel=2,
        )
        return WEIGHT_MASKED_CLASSES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "WEIGHT_MASKED_CLASSES",
    "WeightMaskedConv1D",
    "WeightMaskedConv2D",
    "WeightMaskedConv3D",
    "WeightMaskedDense",
    "WeightMaskedDepthwiseConv1D",
    "WeightMaskedDepthwiseConv2D",
    "WeightMaskedMixin",
]
