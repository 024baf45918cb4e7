"""`reinitialize`: the same architecture with fresh weights (scratch runs)."""

import zlib

import numpy as np

from keras_neuronprune.core.pruned_model import PrunedModel
from keras_neuronprune.core.surgery import check_functional
from keras_neuronprune.core.surgery import clone_layer_from_config
from keras_neuronprune.core.surgery import clone_model
from keras_neuronprune.core.surgery import iter_layers
from keras_neuronprune.core.surgery import layers_by_path
from keras_neuronprune.sparsity._model_utils import masked_layers
from keras_neuronprune.sparsity.layers import WeightMaskedMixin
from keras_neuronprune.sparsity.weight_pruning_controller import (
    WeightPruningController,
)
from keras_neuronprune.utils.validation import check_int


def _reseed(value, seed, salt):
    """Rewrites the `seed` of every serialised initializer inside `value`."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key] = _reseed(item, seed, f"{salt}/{key}")
        config = out.get("config")
        if (
            out.get("module") == "keras.initializers"
            and isinstance(config, dict)
            and "seed" in config
        ):
            config = dict(config)
            config["seed"] = (
                None
                if seed is None
                else (seed + zlib.crc32(salt.encode())) % (2**31 - 1)
            )
            out["config"] = config
        return out
    if isinstance(value, list):
        return [_reseed(v, seed, f"{salt}/{i}") for i, v in enumerate(value)]
    return value


def reinitialize(model, seed=None):
    """Returns the same architecture with freshly initialised weights.

    The Scratch-E / Scratch-B baselines of "Rethinking the Value of Network
    Pruning": take a pruned architecture (a model thinned by
    `keras_neuronprune` or any functional / Sequential model, nested models
    included), re-create every layer from its config and let its
    initialisers draw new weights; train it for the same number of epochs
    (Scratch-E) or the same compute (Scratch-B) as the pruned model's
    fine-tuning.

    Initialisers with an explicit seed in the model get a new one: derived
    from `seed` and the layer path when `seed` is given (reproducible, and
    different for every layer), or None otherwise (a fresh random draw), so
    the new weights never repeat the original initialisation. Batch-norm
    statistics and other non-trainable state restart from their
    initialisers too.

    For a `PrunedModel` from `prune_weights`, the sparse connectivity is
    kept (unstructured Scratch baseline): the masks are copied, the new
    kernels are zero under them, and the result is a `PrunedModel` whose
    controller holds the masks fixed (`method="fixed"`).

    Args:
        model: a built functional or Sequential model. Not modified.
        seed: optional int for reproducible initialisation.

    Returns:
        A new model of the same class family (functional `keras.Model`, or
        `PrunedModel` for a weight-pruned model), uncompiled.

    Raises:
        ValueError: for a subclassed model, a bad `seed`, or a `PrunedModel`
            of structured pruning (strip or thin it first).

    Example:
    ```python
    scratch = keras_neuronprune.sparsity.reinitialize(thinned, seed=0)
    scratch.compile("sgd", "sparse_categorical_crossentropy")
    scratch.fit(x, y, epochs=epochs_of_the_large_model)  # Scratch-E
    ```

    Reference:
        Liu et al., "Rethinking the Value of Network Pruning",
        arXiv:1810.05270.
    """
    check_functional(model)
    if seed is not None:
        seed = check_int(seed, "seed", 0)
    controller = getattr(model, "controller", None)
    if isinstance(model, PrunedModel) and not isinstance(
        controller, WeightPruningController
    ):
        raise ValueError(
            "reinitialize keeps the sparse connectivity of weight-pruned "
            "models only; for a structured-pruning PrunedModel, strip or "
            f"thin it first. Received: model={model.name!r} with controller "
            f"{type(controller).__name__}"
        )

    def clone_function(layer):
        config = _reseed(layer.get_config(), seed, layer.name)
        return clone_layer_from_config(layer, config=config)

    fresh = clone_model(model, clone_function)
    masked = masked_layers(model)
    if not masked:
        return fresh
    new_layers = layers_by_path(fresh)
    for path, layer in iter_layers(model):
        if not isinstance(layer, WeightMaskedMixin):
            continue
        target = new_layers[path]
        mask = layer.current_mask()
        target.kernel_mask.assign(mask)
        kernel = np.asarray(target.kernel_variable.numpy())
        target.kernel_variable.assign(kernel * mask.astype(kernel.dtype))
        if target.learned_mask:
            target.mask_frozen.assign(1.0)
    new_controller = WeightPruningController(method="fixed")
    return PrunedModel(
        fresh.input, fresh.output, name=model.name, controller=new_controller
    )
