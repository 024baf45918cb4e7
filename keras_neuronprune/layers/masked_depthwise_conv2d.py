"""`MaskedDepthwiseConv2D`: `DepthwiseConv2D` with masks."""

import keras

from keras_neuronprune.layers._masked_conv import MaskedDepthwiseConvMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedDepthwiseConv2D(
    MaskedDepthwiseConvMixin, keras.layers.DepthwiseConv2D
):
    """`DepthwiseConv2D` with the masks of `MaskedDepthwiseConvMixin`."""

    parent_class = keras.layers.DepthwiseConv2D
