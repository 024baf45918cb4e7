"""`MaskedSeparableConv2D`: a `SeparableConv2D` with channel masks.

Used by the structured-pruning controller in place of
`keras.layers.SeparableConv2D`. The input mask removes input channels
before the depthwise step, the output mask removes pointwise filters.
"""

import keras
from keras import ops

from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._masking import broadcast_channels


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedSeparableConv2D(MaskedLayerMixin, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with non-trainable channel masks.

    Takes exactly the arguments of `keras.layers.SeparableConv2D`. After
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

    def build(self, input_shape):
        super().build(input_shape)
        in_channels = input_shape[self._channel_axis()]
        self._add_masks(in_channels, self.filters)

    def masked_depthwise_kernel(self):
        kernel = self.depthwise_kernel
        mask = ops.cast(self.input_mask, kernel.dtype)
        return kernel * broadcast_channels(mask, 4, 2)

    def call(self, inputs):
        outputs = ops.separable_conv(
            inputs,
            self.masked_depthwise_kernel(),
            self.pointwise_kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            bias = broadcast_channels(
                self.bias, len(outputs.shape), self._channel_axis()
            )
            outputs = ops.add(outputs, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return self._mask_outputs(outputs)

    def _kernel_axes(self):
        return {
            "depthwise_kernel": (2, None),
            "pointwise_kernel": (None, -1),
            "bias": (None, 0),
        }
