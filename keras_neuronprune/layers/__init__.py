"""Layers used while training with structured pruning or weight sparsity.

- `BoundedBatchNormalization` (alias `BoundedBatchNorm`): RNI's SigBN.
- `MaskedConv1D/2D/3D`, `MaskedDepthwiseConv1D/2D`, `MaskedSeparableConv2D`,
  `MaskedDense`, `MaskedBatchNormalization`: the Keras layers plus
  non-trainable channel masks (`output_mask`, `input_mask`), so a masked
  channel is equivalent to a removed one, and, with `use_kernel_mask=True`,
  an element mask on the kernel (weight sparsity). All share one base,
  `MaskedLayerMixin`.
- `ChannelGate`: a per-channel gate for gradient (Taylor) importances.

One registry maps each Keras layer class (exactly) to its masked class and
its kernel axes: `masked_layer_spec(cls)`, `masked_class_for(layer)`,
`register_masked_layer` (or `register_layer_handler` with a handler whose
`masked_class` is set).

Every masked layer has `set_output_mask(mask)`; the mixing layers also have
`set_input_mask(mask)`. All are registered serialisable under the
`keras_neuronprune` package, so `.keras` files load without
`custom_objects`.
"""

import warnings

from keras_neuronprune.layers._masking import MASK_WEIGHT_NAMES  # noqa: F401
from keras_neuronprune.layers._masking import KernelAxes
from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._registry import MaskedLayerSpec
from keras_neuronprune.layers._registry import masked_class_for
from keras_neuronprune.layers._registry import masked_layer_spec
from keras_neuronprune.layers._registry import masked_layer_specs
from keras_neuronprune.layers._registry import register_masked_layer
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
from keras_neuronprune.layers.channel_gate import GATE_SUFFIX  # noqa: F401
from keras_neuronprune.layers.channel_gate import ChannelGate
from keras_neuronprune.layers.masked_batch_normalization import (
    MaskedBatchNormalization,
)
from keras_neuronprune.layers.masked_conv1d import MaskedConv1D
from keras_neuronprune.layers.masked_conv2d import MaskedConv2D
from keras_neuronprune.layers.masked_conv3d import MaskedConv3D
from keras_neuronprune.layers.masked_dense import MaskedDense
from keras_neuronprune.layers.masked_depthwise_conv1d import (
    MaskedDepthwiseConv1D,
)
from keras_neuronprune.layers.masked_depthwise_conv2d import (
    MaskedDepthwiseConv2D,
)
from keras_neuronprune.layers.masked_multi_head_attention import (
    MaskedMultiHeadAttention,
)
from keras_neuronprune.layers.masked_separable_conv2d import (
    MaskedSeparableConv2D,
)


def __getattr__(name):
    if name == "MASKED_LAYERS":
        warnings.warn(
            "`keras_neuronprune.layers.MASKED_LAYERS` is deprecated; use "
            "`masked_layer_spec(layer_class)` or `masked_class_for(layer)`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return {
            cls.__name__: spec.masked_class
            for cls, spec in masked_layer_specs().items()
            if cls.__module__.split(".")[0] == "keras"
        }
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BoundedBatchNorm",
    "BoundedBatchNormalization",
    "ChannelGate",
    "KernelAxes",
    "MaskedBatchNormalization",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedConv3D",
    "MaskedDense",
    "MaskedMultiHeadAttention",
    "MaskedDepthwiseConv1D",
    "MaskedDepthwiseConv2D",
    "MaskedLayerMixin",
    "MaskedLayerSpec",
    "MaskedSeparableConv2D",
    "bounded_scale_variables",
    "exclude_bounded_scales_from_weight_decay",
    "masked_class_for",
    "masked_layer_spec",
    "masked_layer_specs",
    "register_masked_layer",
]
