"""Physical rewriting of models: thinning and its masked reference."""

from keras_neuronprune.rewrite.keep_sets import uniform_keep
from keras_neuronprune.rewrite.thin_model import thin_model
from keras_neuronprune.rewrite.thin_model import zero_removed_inputs
from keras_neuronprune.rewrite.thinning_report import ThinningReport

__all__ = [
    "ThinningReport",
    "thin_model",
    "uniform_keep",
    "zero_removed_inputs",
]
