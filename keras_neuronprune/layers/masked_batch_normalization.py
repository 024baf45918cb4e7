"""`MaskedBatchNormalization`: a `BatchNormalization` with a channel mask.

Used by the structured-pruning controller in place of
`keras.layers.BatchNormalization`: a removed channel outputs exactly 0
(with a plain BN it would output `beta`).
"""

import keras

from keras_neuronprune.layers._masking import KernelAxes
from keras_neuronprune.layers._masking import MaskedLayerMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedBatchNormalization(
    MaskedLayerMixin, keras.layers.BatchNormalization
):
    """`keras.layers.BatchNormalization` with a non-trainable channel mask.

    Takes exactly the arguments of `keras.layers.BatchNormalization` (no
    kernel, so no kernel mask). After `build` it holds `output_mask`
    `(channels,)` (ones), multiplied into the normalised output, so a
    removed channel outputs exactly 0. Moving statistics are updated as
    usual (also for masked channels; they are discarded when the channel is
    removed).

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedBatchNormalization()
    y = layer(x)
    layer.set_output_mask([1, 1, 0, 1])
    ```
    """

    parent_class = keras.layers.BatchNormalization
    kernel_name = None
    kernel_axes = dict.fromkeys(("gamma", "beta"), KernelAxes(None, (0,)))

    def _mask_channels(self, input_shape):
        return None, input_shape[self.axis]

    def _channel_axis(self):
        return self.axis

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        return self._mask_outputs(outputs)
