"""Layers used while training with structured pruning.

- `BoundedBatchNormalization` (alias `BoundedBatchNorm`): RNI's SigBN.
- `MaskedConv1D/2D/3D`, `MaskedDepthwiseConv2D`, `MaskedSeparableConv2D`,
  `MaskedDense`, `MaskedBatchNormalization`: the Keras layers plus
  non-trainable channel masks (`output_mask`, `input_mask`), so a masked
  channel is equivalent to a removed one.
- `ChannelGate`: a per-channel gate for gradient (Taylor) importances.

Every layer here has `set_output_mask(mask)`; the mixing layers also have
`set_input_mask(mask)`. All are registered serialisable under the
`keras_neuronprune` package, so `.keras` files load without
`custom_objects`.
"""

from keras_neuronprune.layers._masking import MASK_WEIGHT_NAMES
from keras_neuronprune.layers.bounded_batch_normalization import (
    BoundedBatchNorm,
)
from keras_neuronprune.layers.bounded_batch_normalization import (
    BoundedBatchNormalization,
)
from keras_neuronprune.layers.bounded_batch_normalization import (
    bounded_scale_variables,
)
from keras_neuronprune.layers.bounded_batch_normalization import (
    exclude_bounded_scales_from_weight_decay,
)
from keras_neuronprune.layers.channel_gate import GATE_SUFFIX
from keras_neuronprune.layers.channel_gate import ChannelGate
from keras_neuronprune.layers.masked_batch_normalization import (
    MaskedBatchNormalization,
)
from keras_neuronprune.layers.masked_conv1d import MaskedConv1D
from keras_neuronprune.layers.masked_conv2d import MaskedConv2D
from keras_neuronprune.layers.masked_conv3d import MaskedConv3D
from keras_neuronprune.layers.masked_dense import MaskedDense
from keras_neuronprune.layers.masked_depthwise_conv2d import (
    MaskedDepthwiseConv2D,
)
from keras_neuronprune.layers.masked_separable_conv2d import (
    MaskedSeparableConv2D,
)

MASKED_LAYERS = {
    "Conv1D": MaskedConv1D,
    "Conv2D": MaskedConv2D,
    "Conv3D": MaskedConv3D,
    "DepthwiseConv2D": MaskedDepthwiseConv2D,
    "SeparableConv2D": MaskedSeparableConv2D,
    "Dense": MaskedDense,
    "BatchNormalization": MaskedBatchNormalization,
}


def masked_class_for(layer):
    """The masked class to swap in for `layer` (exact Keras class), or None.

    Only the plain Keras classes map: a user subclass may change `call`,
    which the masked layer would silently drop.
    """
    cls = type(layer)
    if cls.__module__.startswith("keras.") or cls.__module__ == "keras":
        return MASKED_LAYERS.get(cls.__name__)
    return None


__all__ = [
    "BoundedBatchNorm",
    "BoundedBatchNormalization",
    "ChannelGate",
    "GATE_SUFFIX",
    "MASKED_LAYERS",
    "MASK_WEIGHT_NAMES",
    "MaskedBatchNormalization",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedConv3D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedSeparableConv2D",
    "bounded_scale_variables",
    "exclude_bounded_scales_from_weight_decay",
    "masked_class_for",
]
