"""`MaskedConv2D`: a `Conv2D` with per-channel input and output masks.

Used by the structured-pruning controller as a drop-in replacement for
`keras.layers.Conv2D` while channels are removed during training: set
`output_mask` / `input_mask` entries to 0 (`set_output_mask`,
`set_input_mask`) to remove filters / input channels; strip with
`Conv2D.from_config(layer.get_config())` plus `layer.stripped_weights()`
(or `layer.to_parent()`).
"""

import keras

from keras_neuronprune.layers._masked_conv import MaskedConvMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedConv2D(MaskedConvMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with non-trainable channel masks.

    Takes exactly the arguments of `keras.layers.Conv2D` (its config is
    the parent's). After `build` it holds two extra non-trainable float
    weights, initialised to ones:

    - `output_mask` `(filters,)`: multiplied into the output after the
      bias and the activation, so a removed filter outputs exactly 0.
    - `input_mask` `(in_channels,)`: multiplied into the kernel's input
      axis, so a removed input channel contributes nothing even where the
      producing layer outputs a non-zero value for it (e.g. a sigmoid).
      With `groups > 1` it still covers all input channels.

    Masking a channel is therefore equivalent to removing it physically.

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedConv2D(8, 3, activation="relu")
    y = layer(x)
    layer.set_output_mask([1, 1, 0, 1, 1, 1, 1, 1])  # remove filter 2
    ```
    """

    parent_class = keras.layers.Conv2D
