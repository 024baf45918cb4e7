"""keras_neuronprune: structured pruning for Keras 3.

Find the channels a network does not need, train so they recede, remove
them physically, and ship the thinner model.
"""

from keras_neuronprune.utils import tf_logging as _tf_logging  # noqa: I001

_tf_logging.quiet_tensorflow()

from keras_neuronprune import analysis
from keras_neuronprune import callbacks
from keras_neuronprune import criteria
from keras_neuronprune import export
from keras_neuronprune import layers
from keras_neuronprune import lowrank
from keras_neuronprune import regularizers
from keras_neuronprune import schedules
from keras_neuronprune import sparsity
from keras_neuronprune.core import PrunedModel
from keras_neuronprune.core import PruningController
from keras_neuronprune.cost import count_cost
from keras_neuronprune.graph import channel_groups
from keras_neuronprune.graph import register_layer_handler
from keras_neuronprune.layers import BoundedBatchNorm
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.pruning import prune_structured
from keras_neuronprune.pruning import strip_pruning
from keras_neuronprune.rewrite import thin_model
from keras_neuronprune.rewrite import uniform_keep
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity import reinitialize
from keras_neuronprune.version import __version__

__all__ = [
    "BoundedBatchNorm",
    "BoundedBatchNormalization",
    "PrunedModel",
    "PruningController",
    "__version__",
    "analysis",
    "callbacks",
    "channel_groups",
    "count_cost",
    "criteria",
    "export",
    "layers",
    "lowrank",
    "prune_structured",
    "prune_weights",
    "regularizers",
    "reinitialize",
    "register_layer_handler",
    "schedules",
    "sparsity",
    "strip_pruning",
    "thin_model",
    "uniform_keep",
]
