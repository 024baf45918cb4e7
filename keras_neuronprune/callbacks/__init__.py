"""Keras callbacks that drive and report pruning during `fit`."""

from keras_neuronprune.callbacks.pruning_summaries import PruningSummaries
from keras_neuronprune.callbacks.update_pruning import UpdatePruning

__all__ = ["PruningSummaries", "UpdatePruning"]
