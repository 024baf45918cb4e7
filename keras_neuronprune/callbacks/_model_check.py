"""Shared check that a callback is attached to a model under pruning."""

import numpy as np


def require_pruned_model(model, callback_name):
    """Returns `model` if it is a `PrunedModel` with a controller.

    Raises:
        ValueError: naming the callback and the model it received.
    """
    from keras_neuronprune.core.pruned_model import PrunedModel

    if not isinstance(model, PrunedModel):
        raise ValueError(
            f"`{callback_name}` only works with a model returned by "
            "`keras_neuronprune.prune_structured` or "
            "`keras_neuronprune.prune_weights` (a `PrunedModel`). Received: "
            f"model={getattr(model, 'name', model)!r} of type "
            f"{type(model).__name__}. Call `fit` on the pruned model itself, "
            "not on a model that wraps it."
        )
    if getattr(model, "controller", None) is None:
        raise ValueError(
            f"`{callback_name}` needs `model.controller`, but the PrunedModel "
            f"{model.name!r} has none. Received: model.controller=None. "
            "Create the model with `keras_neuronprune.prune_structured` or "
            "`keras_neuronprune.prune_weights`."
        )
    return model


def current_step(model):
    """Reads `model.pruning_step` as a Python int."""
    return int(np.asarray(model.pruning_step.numpy()))
