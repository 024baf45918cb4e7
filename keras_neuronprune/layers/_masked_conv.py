"""Shared implementation of `MaskedConv1D/2D/3D` (private)."""

from keras import ops

from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._masking import broadcast_channels
from keras_neuronprune.layers._masking import grouped_kernel_input_mask


class MaskedConvMixin(MaskedLayerMixin):
    """Masks for `keras.layers.ConvND` subclasses.

    The kernel (`(*kernel_size, in_channels // groups, filters)`) is
    multiplied by `input_mask` on its input axis before the convolution, so
    a removed input channel contributes nothing whatever its value; the
    layer's output (after bias and activation) is multiplied by
    `output_mask`, so a removed filter outputs exactly 0.
    """

    has_input_mask = True

    def build(self, input_shape):
        super().build(input_shape)
        in_channels = input_shape[self._channel_axis()]
        self._add_masks(in_channels, self.filters)

    def masked_kernel(self):
        """The kernel as the convolution sees it (input mask applied)."""
        kernel = self.kernel
        mask = ops.cast(self.input_mask, kernel.dtype)
        if self.groups == 1:
            return kernel * broadcast_channels(mask, len(kernel.shape), -2)
        in_g = kernel.shape[-2]
        return kernel * grouped_kernel_input_mask(
            mask, in_g, self.filters, self.groups
        )

    def call(self, inputs):
        padding = self.padding
        if padding == "causal":
            # Only Conv1D accepts "causal"; it pads on the left itself.
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        outputs = ops.conv(
            inputs,
            self.masked_kernel(),
            strides=list(self.strides),
            padding=padding,
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
        return {"kernel": (-2, -1), "bias": (None, 0)}

    # Keras' BaseConv saves only kernel and bias by index; append the masks.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        if not self.built:
            return
        offset = 1 + int(self.use_bias)
        for i, variable in enumerate(self._mask_variables()):
            store[str(offset + i)] = variable

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if not self.built:
            return
        offset = 1 + int(self.use_bias)
        for i, variable in enumerate(self._mask_variables()):
            variable.assign(store[str(offset + i)])
