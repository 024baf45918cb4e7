"""`ChannelGate`: a per-channel multiplicative gate for gradient importance.

The structured-pruning controller inserts one gate after each
BatchNormalization (as Taylor 2019 does) when a gradient-based criterion is
used; the gate of layer `L` is named `f"{L}{GATE_SUFFIX}"` so criteria can
find it. `taylor` and its variants read `gate * dL/dgate`, which equals
`sum(activation * dL/dactivation)` over the batch and the spatial
positions, from the gate's output. After pruning the gate is folded into
the preceding layer or dropped (it is all ones when not trained).
"""

import keras
from keras import ops

from keras_neuronprune.layers._masking import as_mask
from keras_neuronprune.layers._masking import broadcast_channels

GATE_SUFFIX = "_gate"


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class ChannelGate(keras.layers.Layer):
    """Multiplies each channel by `gate * channel_mask`.

    `gate` is a per-channel weight initialised to ones (trainable by
    default, so its gradient is available from the training step; pass
    `gate_trainable=False` for the fixed gate of the paper, whose gradient
    the helpers in `keras_neuronprune.utils.gradients` still compute).
    `channel_mask` is a non-trainable 0/1 vector (ones) that removes
    channels (`set_output_mask`).

    Args:
        axis: the channel axis.
        gate_trainable: whether the optimizer updates `gate`.
        gate_regularizer: optional regulariser on `gate`.
        **kwargs: base layer arguments (`name`, `dtype`...).

    Call arguments:
        inputs: a tensor whose `axis` dimension is the channel count.

    Example:

    ```python
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras_neuronprune.layers.ChannelGate(name="bn1_gate")(x)
    ```

    Reference:
        Molchanov et al., "Importance Estimation for Neural Network
        Pruning", CVPR 2019.
    """

    def __init__(
        self, axis=-1, gate_trainable=True, gate_regularizer=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.gate_trainable = bool(gate_trainable)
        self.gate_regularizer = keras.regularizers.get(gate_regularizer)
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                "`ChannelGate` needs a known channel dimension on axis "
                f"{self.axis}. Received: input_shape={input_shape}"
            )
        self.gate = self.add_weight(
            shape=(channels,),
            initializer="ones",
            regularizer=self.gate_regularizer,
            trainable=self.gate_trainable,
            name="gate",
        )
        self.channel_mask = self.add_weight(
            shape=(channels,),
            initializer="ones",
            trainable=False,
            name="channel_mask",
        )

    def call(self, inputs):
        factor = ops.cast(self.gate * self.channel_mask, inputs.dtype)
        return inputs * broadcast_channels(factor, len(inputs.shape), self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def set_output_mask(self, mask):
        """Sets `channel_mask` from a 0/1 (or boolean) array."""
        self.channel_mask.assign(as_mask(mask, self.channel_mask, "mask"))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "gate_trainable": self.gate_trainable,
                "gate_regularizer": keras.regularizers.serialize(
                    self.gate_regularizer
                ),
            }
        )
        return config
