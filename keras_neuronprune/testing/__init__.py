"""Public test helpers: random keep sets, thinning assertions, tiny models.

Like `tensorflow_model_optimization`'s `test_utils`, these are meant for
projects that add their own layer handlers and want to prove that thinning
their models is exact.
"""

from keras_neuronprune.testing.keep_sets import random_keep
from keras_neuronprune.testing.model_catalogue import CATALOGUE
from keras_neuronprune.testing.model_catalogue import randomize_weights
from keras_neuronprune.testing.thin_checks import assert_channel_counts
from keras_neuronprune.testing.thin_checks import assert_outputs_close
from keras_neuronprune.testing.thin_checks import assert_thin_matches
from keras_neuronprune.testing.thin_checks import model_outputs
from keras_neuronprune.testing.thin_checks import random_inputs
from keras_neuronprune.testing.thin_checks import removed_positions
from keras_neuronprune.testing.thin_checks import weights_fingerprint

__all__ = [
    "CATALOGUE",
    "assert_channel_counts",
    "assert_outputs_close",
    "assert_thin_matches",
    "model_outputs",
    "random_inputs",
    "random_keep",
    "randomize_weights",
    "removed_positions",
    "weights_fingerprint",
]
