"""`MaskedDense`: a `Dense` layer with unit masks and an optional kernel mask.

Used by the structured-pruning controller in place of `keras.layers.Dense`
while units are removed during training, and (with `use_kernel_mask=True`)
by weight sparsity. Strip with `layer.to_parent()`.
"""

import keras
from keras import ops

from keras_neuronprune.layers._masking import KernelAxes
from keras_neuronprune.layers._masking import MaskedLayerMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedDense(MaskedLayerMixin, keras.layers.Dense):
    """`keras.layers.Dense` with channel masks and an optional kernel mask.

    Takes the arguments of `keras.layers.Dense` and of `MaskedLayerMixin`
    (the kernel-mask options). After `build` it holds two non-trainable
    float weights, initialised to ones:

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
    kernel_axes = {
        "kernel": KernelAxes(0, (1,)),
        "bias": KernelAxes(None, (0,)),
    }

    def _mask_channels(self, input_shape):
        return input_shape[-1], self.units

    def call(self, inputs, training=None):
        return self._finish(ops.matmul(inputs, self._masked_weight("kernel")))
