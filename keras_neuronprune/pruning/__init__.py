"""Training-time structured (channel) pruning: wrap, train, strip."""

from keras_neuronprune.pruning.prune_structured import prune_structured
from keras_neuronprune.pruning.strip_pruning import strip_pruning
from keras_neuronprune.pruning.structured_pruning_controller import (
    StructuredPruningController,
)

__all__ = [
    "StructuredPruningController",
    "prune_structured",
    "strip_pruning",
]
