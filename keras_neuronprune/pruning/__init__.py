"""Structured (channel) pruning: during training, and one-shot drivers.

`prune_structured` wraps a model to prune while it trains; the one-shot
drivers (`thinet_prune`, `singe_prune`, `hessian_spectral_prune`,
`iterative_prune`) thin a trained model directly. The drivers load on first
use, so importing the package does not load their criteria.
"""

import importlib

from keras_neuronprune.pruning.prune_structured import prune_structured
from keras_neuronprune.pruning.strip_pruning import strip_pruning
from keras_neuronprune.pruning.structured_pruning_controller import (
    StructuredPruningController,
)

# Public name -> module of this package that defines it.
_DRIVERS = {
    "default_fine_tune": "iterative",
    "hessian_spectral_prune": "hessian_spectral",
    "iterative_prune": "iterative",
    "singe_prune": "singe",
    "thinet_prune": "thinet",
}


def __getattr__(name):
    if name in _DRIVERS:
        module = importlib.import_module(
            f"keras_neuronprune.pruning.{_DRIVERS[name]}"
        )
        return getattr(module, name)
    raise AttributeError(
        f"module 'keras_neuronprune.pruning' has no attribute {name!r}"
    )


__all__ = [
    "StructuredPruningController",
    "default_fine_tune",
    "hessian_spectral_prune",
    "iterative_prune",
    "prune_structured",
    "singe_prune",
    "strip_pruning",
    "thinet_prune",
]
