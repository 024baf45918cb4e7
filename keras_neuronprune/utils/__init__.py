"""Backend-specific helpers shared by the data-driven criteria."""

from keras_neuronprune.utils.gradients import activations_and_gradients
from keras_neuronprune.utils.gradients import (
    gradient_and_hessian_vector_product,
)
from keras_neuronprune.utils.gradients import hessian_vector_product
from keras_neuronprune.utils.gradients import loss_and_gradients
from keras_neuronprune.utils.gradients import resolve_loss

__all__ = [
    "activations_and_gradients",
    "gradient_and_hessian_vector_product",
    "hessian_vector_product",
    "loss_and_gradients",
    "resolve_loss",
]
