"""The one masked-layer registry: Keras layer class -> masked class + axes.

Keyed by the exact layer class, never by a subclass: a user subclass of
`keras.layers.Conv2D` may change `call`, which swapping in `MaskedConv2D`
would silently drop. Structured pruning (`masked_class_for`), weight
sparsity (`keras_neuronprune.sparsity.layers.WEIGHT_MASKED_CLASSES`) and
the graph handlers (`LayerHandler.masked_class`, `.kernel_axes`) all
read this table; `register_layer_handler` (or `register_masked_layer`) adds a
custom layer to it.
"""

from typing import NamedTuple

from keras_neuronprune.layers._masking import MaskedLayerMixin
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


class MaskedLayerSpec(NamedTuple):
    """What the registry knows about one layer class.

    Attributes:
        masked_class: the `MaskedLayerMixin` subclass to swap in.
        kernel_axes: `{weight_name: KernelAxes(input, output)}`: where each
            weight's input and output channels are.
    """

    masked_class: type
    kernel_axes: dict


_REGISTRY = {}


def register_masked_layer(layer_class, masked_class, kernel_axes=None):
    """Registers the masked class that replaces exactly `layer_class`.

    `register_layer_handler(layer_class, handler)` calls this when the
    handler sets `masked_class`; call it directly for a layer without a
    custom handler.

    Args:
        layer_class: the Keras layer class (matched exactly, not its
            subclasses).
        masked_class: a subclass of `layer_class` and of
            `keras_neuronprune.layers.MaskedLayerMixin`.
        kernel_axes: `{weight_name: KernelAxes}`; default
            `masked_class.kernel_axes`.

    Raises:
        TypeError: if either argument is not such a class.

    Example:

    ```python
    keras_neuronprune.layers.register_masked_layer(MyConv, MaskedMyConv)
    ```
    """
    if not isinstance(layer_class, type):
        raise TypeError(
            "`layer_class` must be a class. "
            f"Received: layer_class={layer_class!r}"
        )
    if not (
        isinstance(masked_class, type)
        and issubclass(masked_class, MaskedLayerMixin)
        and issubclass(masked_class, layer_class)
    ):
        raise TypeError(
            "`masked_class` must subclass both `layer_class` and "
            "keras_neuronprune.layers.MaskedLayerMixin. "
            f"Received: masked_class={masked_class!r}, "
            f"layer_class={layer_class!r}"
        )
    axes = masked_class.kernel_axes if kernel_axes is None else kernel_axes
    _REGISTRY[layer_class] = MaskedLayerSpec(masked_class, dict(axes))


def masked_layer_spec(layer_class):
    """The `MaskedLayerSpec` of exactly `layer_class`, or None."""
    return _REGISTRY.get(layer_class)


def masked_layer_specs():
    """A copy of the whole registry: `{layer_class: MaskedLayerSpec}`."""
    return dict(_REGISTRY)


def masked_class_for(layer):
    """The masked class to swap in for `layer` (exact class), or None.

    Only the registered classes map: a user subclass may change `call`,
    which the masked layer would silently drop.
    """
    spec = _REGISTRY.get(type(layer))
    return None if spec is None else spec.masked_class


for _masked in (
    MaskedConv1D,
    MaskedConv2D,
    MaskedConv3D,
    MaskedDepthwiseConv1D,
    MaskedDepthwiseConv2D,
    MaskedSeparableConv2D,
    MaskedDense,
    MaskedBatchNormalization,
    MaskedMultiHeadAttention,
):
    register_masked_layer(_masked.parent_class, _masked)
