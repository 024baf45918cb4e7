"""`MaskedSeparableConv2D`: a `SeparableConv2D` with channel masks.

Used by the structured-pruning controller in place of
`keras.layers.SeparableConv2D`. The input mask removes input channels
before the depthwise step, the output mask removes pointwise filters.
"""

import keras
from keras import ops

from keras_neuronprune.layers._masking import KernelAxes
from keras_neuronprune.layers._masking import MaskedLayerMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedSeparableConv2D(MaskedLayerMixin, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with non-trainable channel masks.

    Takes exactly the arguments of `keras.layers.SeparableConv2D` (no kernel
    mask: weight sparsity does not cover separable convolutions). After
    `build` it holds:

    - `input_mask` `(in_channels,)`: multiplied into the depthwise kernel's
      input axis; the depthwise output of a removed channel is then 0 and
      the pointwise step (there is no bias in between) gets nothing from it.
    - `output_mask` `(filters,)`: multiplied into the output after bias and
      activation.

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedSeparableConv2D(8, 3)
    y = layer(x)
    layer.set_input_mask([1, 0, 1])  # x has 3 channels
    ```
    """

    parent_class = keras.layers.SeparableConv2D
    has_input_mask = True
    kernel_name = None
    kernel_axes = {
        "depthwise_kernel": KernelAxes(2, ()),
        "pointwise_kernel": KernelAxes(None, (-1,)),
        "bias": KernelAxes(None, (0,)),
    }

    def _mask_channels(self, input_shape):
        return input_shape[self._channel_axis()], self.filters

    def call(self, inputs):
        outputs = ops.separable_conv(
            inputs,
            self._masked_weight("depthwise_kernel"),
            self.pointwise_kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return self._finish(outputs)
