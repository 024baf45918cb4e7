"""`MaskedDepthwiseConv2D`: a `DepthwiseConv2D` with a channel mask.

Used by the structured-pruning controller in place of
`keras.layers.DepthwiseConv2D`. A depthwise convolution does not mix
channels, so one mask (`output_mask`, over the output channels) is enough.
"""

import keras

from keras_neuronprune.layers._masking import MaskedLayerMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedDepthwiseConv2D(MaskedLayerMixin, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with a non-trainable channel mask.

    Takes exactly the arguments of `keras.layers.DepthwiseConv2D`. After
    `build` it holds `output_mask` `(in_channels * depth_multiplier,)`
    (ones), multiplied into the output after bias and activation. Output
    channel `c * depth_multiplier + m` comes from input channel `c`, so
    removing input channel `c` means zeroing those `depth_multiplier`
    entries (the `channels` rows of a channel-group member list exactly
    these positions).

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedDepthwiseConv2D(3)
    y = layer(x)  # x has 4 channels
    layer.set_output_mask([1, 0, 1, 1])
    ```
    """

    parent_class = keras.layers.DepthwiseConv2D

    def build(self, input_shape):
        super().build(input_shape)
        channels = input_shape[self._channel_axis()] * self.depth_multiplier
        self._add_masks(None, channels)

    def call(self, inputs):
        return self._mask_outputs(super().call(inputs))

    def _kernel_axes(self):
        # The kernel is (kh, kw, in, multiplier): output channel
        # c * multiplier + m lives at [..., c, m], so fold through a reshape
        # in stripped_weights instead of a single axis.
        return {"bias": (None, 0)}

    def stripped_weights(self):
        weights = super().stripped_weights()
        mask = self.output_mask.numpy().reshape(-1, self.depth_multiplier)
        weights[0] = weights[0] * mask[None, None]
        return weights
