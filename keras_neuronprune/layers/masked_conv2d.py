"""`MaskedConv2D`: `keras.layers.Conv2D` with masks (`MaskedConvMixin`)."""

import keras

from keras_neuronprune.layers._masked_conv import MaskedConvMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedConv2D(MaskedConvMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with the masks of `MaskedConvMixin`."""

    parent_class = keras.layers.Conv2D
