"""`MaskedDense`: a `Dense` layer with per-unit input and output masks.

Used by the structured-pruning controller in place of `keras.layers.Dense`
while units are removed during training. Strip with
`Dense.from_config(layer.get_config())` plus `layer.stripped_weights()` (or
`layer.to_parent()`).
"""

import keras
from keras import ops

from keras_neuronprune.layers._masking import MaskedLayerMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedDense(MaskedLayerMixin, keras.layers.Dense):
    """`keras.layers.Dense` with non-trainable channel masks.

    Takes exactly the arguments of `keras.layers.Dense`. After `build` it
    holds two non-trainable float weights, initialised to ones:

    - `output_mask` `(units,)`: multiplied into the output after the bias
      and the activation, so a removed unit outputs exactly 0.
    - `input_mask` `(input_dim,)`: multiplied into the kernel's rows, so a
      removed input feature contributes nothing whatever its value. After a
      `Flatten` it has the flattened length (one entry per flattened
      feature; a removed conv channel zeroes all its spatial positions).

    Quantized modes (int8, int4, ...) are not supported.

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedDense(4, activation="relu")
    y = layer(x)
    layer.set_output_mask([1, 0, 1, 1])
    ```
    """

    parent_class = keras.layers.Dense
    has_input_mask = True

    def build(self, input_shape):
        super().build(input_shape)
        self._add_masks(input_shape[-1], self.units)

    def masked_kernel(self):
        """The kernel as the matmul sees it (input mask applied)."""
        kernel = self.kernel
        mask = ops.cast(self.input_mask, kernel.dtype)
        return kernel * ops.expand_dims(mask, -1)

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.masked_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return self._mask_outputs(x)

    @property
    def variable_serialization_spec(self):
        # Keras' Dense saves variables by this list; append the masks.
        spec = dict(super().variable_serialization_spec)
        spec[None] = list(spec[None]) + ["output_mask", "input_mask"]
        return spec

    def _kernel_axes(self):
        return {"kernel": (0, 1), "bias": (None, 0)}
