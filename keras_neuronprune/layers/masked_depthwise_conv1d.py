"""`MaskedDepthwiseConv1D`: `DepthwiseConv1D` with masks."""

import keras

from keras_neuronprune.layers._masked_conv import MaskedDepthwiseConvMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedDepthwiseConv1D(
    MaskedDepthwiseConvMixin, keras.layers.DepthwiseConv1D
):
    """`DepthwiseConv1D` with the masks of `MaskedDepthwiseConvMixin`."""

    parent_class = keras.layers.DepthwiseConv1D
