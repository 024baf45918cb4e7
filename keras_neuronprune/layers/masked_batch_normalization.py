"""`MaskedBatchNormalization`: a `BatchNormalization` with a channel mask.

Used by the structured-pruning controller in place of
`keras.layers.BatchNormalization`: a removed channel outputs exactly 0
(with a plain BN it would output `beta`).
"""

import keras
from keras import ops

from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._masking import broadcast_channels


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedBatchNormalization(
    MaskedLayerMixin, keras.layers.BatchNormalization
):
    """`keras.layers.BatchNormalization` with a non-trainable channel mask.

    Takes exactly the arguments of `keras.layers.BatchNormalization`. After
    `build` it holds `output_mask` `(channels,)` (ones), multiplied into the
    normalised output, so a removed channel outputs exactly 0. Moving
    statistics are updated as usual (also for masked channels; they are
    discarded when the channel is removed).

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedBatchNormalization()
    y = layer(x)
    layer.set_output_mask([1, 1, 0, 1])
    ```
    """

    parent_class = keras.layers.BatchNormalization

    def build(self, input_shape):
        super().build(input_shape)
        self._add_masks(None, input_shape[self.axis])

    def _channel_axis(self):
        return self.axis

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        factor = ops.cast(self.output_mask, outputs.dtype)
        rank = len(outputs.shape)
        return outputs * broadcast_channels(factor, rank, self.axis)

    def _kernel_axes(self):
        return {"gamma": (None, 0), "beta": (None, 0)}
