"""`MaskedConv1D`: `keras.layers.Conv1D` with masks (`MaskedConvMixin`)."""

import keras

from keras_neuronprune.layers._masked_conv import MaskedConvMixin


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedConv1D(MaskedConvMixin, keras.layers.Conv1D):
    """`keras.layers.Conv1D` with the masks of `MaskedConvMixin`."""

    parent_class = keras.layers.Conv1D
