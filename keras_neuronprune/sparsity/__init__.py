"""Weight-level (unstructured) sparsity and sparse training for Keras 3.

`prune_weights` wraps a model for one of six methods (magnitude, SNIP,
RigL, SCL, ISS-P, NNrelief); `strip_weight_pruning` turns the result into
plain Keras layers with exact zeros; `reinitialize` gives the scratch
baselines. The methods are configured objects in `methods`
(`prune_weights(model, method=methods.RigLMethod(end_step=3000))`). See
docs/sparsity.md for what sparsity buys at export time.
"""

from keras_neuronprune.sparsity import layers
from keras_neuronprune.sparsity import methods
from keras_neuronprune.sparsity import schedules
from keras_neuronprune.sparsity.prune_weights import prune_weights
from keras_neuronprune.sparsity.reinitialize import reinitialize
from keras_neuronprune.sparsity.strip_weight_pruning import strip_weight_pruning
from keras_neuronprune.sparsity.weight_pruning_controller import (
    WeightPruningController,
)

__all__ = [
    "WeightPruningController",
    "layers",
    "methods",
    "prune_weights",
    "reinitialize",
    "schedules",
    "strip_weight_pruning",
]
