"""Backend-specific helpers shared by the data-driven criteria.

The gradient helpers load on first use, so importing the package does not
import the backend's gradient machinery (and its start-up logs) early.
"""

import importlib

__all__ = [
    "activations_and_gradients",
    "gradient_and_hessian_vector_product",
    "hessian_vector_product",
    "loss_and_gradients",
    "resolve_loss",
]


def __getattr__(name):
    if name in __all__:
        module = importlib.import_module("keras_neuronprune.utils.gradients")
        return getattr(module, name)
    raise AttributeError(
        f"module 'keras_neuronprune.utils' has no attribute {name!r}"
    )
