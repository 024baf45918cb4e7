"""Forward passes of the masked convolutions (private).

`MaskedConvMixin` serves `MaskedConv1D/2D/3D`, `MaskedDepthwiseConvMixin`
serves `MaskedDepthwiseConv1D/2D`; both extend `MaskedLayerMixin`.
"""

from keras import ops

from keras_neuronprune.layers._masking import KernelAxes
from keras_neuronprune.layers._masking import MaskedLayerMixin

BIAS_AXES = KernelAxes(None, (0,))


class MaskedConvMixin(MaskedLayerMixin):
    """Masks for `keras.layers.ConvND`.

    The kernel (`(*kernel_size, in_channels // groups, filters)`) is
    multiplied by the kernel mask (if any) and by `input_mask` on its input
    axis before the convolution, so a removed input channel contributes
    nothing whatever its value (with `groups > 1` the input mask still
    covers all input channels); the layer's output (after bias and
    activation) is multiplied by `output_mask`, so a removed filter outputs
    exactly 0. Masking a channel is therefore equivalent to removing it.
    """

    has_input_mask = True
    kernel_axes = {"kernel": KernelAxes(-2, (-1,)), "bias": BIAS_AXES}

    def _mask_channels(self, input_shape):
        return input_shape[self._channel_axis()], self.filters

    def call(self, inputs):
        padding = self.padding
        if padding == "causal":
            # Only Conv1D accepts "causal"; it pads on the left itself.
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        outputs = ops.conv(
            inputs,
            self._masked_weight("kernel"),
            strides=list(self.strides),
            padding=padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return self._finish(outputs)


class MaskedDepthwiseConvMixin(MaskedLayerMixin):
    """Masks for `keras.layers.DepthwiseConv1D/2D`.

    A depthwise convolution does not mix channels, so one channel mask
    (`output_mask`, over the `in_channels * depth_multiplier` outputs) is
    enough. Output channel `c * depth_multiplier + m` comes from input
    channel `c` (kernel entry `[..., c, m]`), so removing input channel `c`
    means zeroing those `depth_multiplier` entries (the `channels` rows of a
    channel-group member list exactly these positions).
    """

    kernel_axes = {"kernel": KernelAxes(None, (-2, -1)), "bias": BIAS_AXES}

    def _mask_channels(self, input_shape):
        channels = input_shape[self._channel_axis()] * self.depth_multiplier
        return None, channels

    def call(self, inputs):
        outputs = ops.depthwise_conv(
            inputs,
            self._masked_weight("kernel"),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return self._finish(outputs)
