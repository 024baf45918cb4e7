"""The weight-masked layers of a model (private).

Walking, finding, cloning and copying live in `keras_neuronprune.core.surgery`.
"""

from keras_neuronprune.core.surgery import iter_layers
from keras_neuronprune.sparsity.layers import WeightMaskedMixin


def masked_layers(model):
    """`[(path, layer)]` of the weight-masked layers of `model`."""
    return [
        (path, layer)
        for path, layer in iter_layers(model)
        if isinstance(layer, WeightMaskedMixin)
    ]
