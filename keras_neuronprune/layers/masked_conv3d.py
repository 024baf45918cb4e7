"""`MaskedConv3D`: `keras.layers.Conv3D` with masks (`MaskedConvMixin`)."""

import keras

from keras_neuronprune.layers._masked_conv import MaskedConvMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedConv3D(MaskedConvMixin, keras.layers.Conv3D):
    """`keras.layers.Conv3D` with the masks of `MaskedConvMixin`."""

    parent_class = keras.layers.Conv3D
