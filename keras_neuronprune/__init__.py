"""keras_neuronprune: structured pruning for Keras 3.

Find the channels a network does not need, train so they recede, remove
them physically, and ship the thinner model.
"""

from keras_neuronprune.cost import count_cost
from keras_neuronprune.graph import channel_groups
from keras_neuronprune.graph import register_layer_handler
from keras_neuronprune.rewrite import thin_model
from keras_neuronprune.rewrite import uniform_keep
from keras_neuronprune.version import __version__

__all__ = [
    "__version__",
    "channel_groups",
    "count_cost",
    "register_layer_handler",
    "thin_model",
    "uniform_keep",
]
