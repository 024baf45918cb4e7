"""Shared training-time pruning protocol (model wrapper and controller base)."""

from keras_neuronprune.core.pruned_model import PrunedModel
from keras_neuronprune.core.pruning_controller import PruningController

__all__ = ["PrunedModel", "PruningController"]
