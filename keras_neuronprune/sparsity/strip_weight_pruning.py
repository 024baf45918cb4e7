"""`strip_weight_pruning`: back to plain Keras layers with exact zeros."""

from keras_neuronprune.core.surgery import check_functional
from keras_neuronprune.core.surgery import clone_layer_from_config
from keras_neuronprune.core.surgery import clone_model
from keras_neuronprune.core.surgery import iter_layers
from keras_neuronprune.core.surgery import layers_by_path
from keras_neuronprune.sparsity.layers import WeightMaskedMixin


def strip_weight_pruning(model):
    """Returns a plain Keras model with the pruned weights set to zero.

    Every weight-masked layer becomes the Keras layer it extends (same name
    and config) with kernel `kernel * mask`; learned (SCL) masks that are
    not frozen yet use `step(score)`. Shapes stay dense: the zeros are what
    makes the gzipped `.tflite` / `.keras` file smaller. Other layers are
    copied as they are. The input model is not modified, and the result is
    a functional `keras.Model` (not a `PrunedModel`) that saves, loads and
    exports without keras_neuronprune.

    Args:
        model: a model returned by `prune_weights` (or any functional or
            Sequential model containing weight-masked layers).

    Returns:
        A functional `keras.Model` with the same layer names.

    Raises:
        ValueError: if `model` is not a functional or Sequential model.

    Example:
    ```python
    final = keras_neuronprune.sparsity.strip_weight_pruning(pruned)
    final.save("sparse.keras")
    ```
    """
    check_functional(model)

    def clone_function(layer):
        if isinstance(layer, WeightMaskedMixin):
            return clone_layer_from_config(
                layer, layer.parent_class, layer.parent_config()
            )
        return clone_layer_from_config(layer)

    stripped = clone_model(model, clone_function)
    new_layers = layers_by_path(stripped)
    for path, layer in iter_layers(model):
        target = new_layers[path]
        if isinstance(layer, WeightMaskedMixin):
            kernel_id = id(layer.kernel_variable)
            kernel = layer.masked_kernel()
            for variable, new_variable in zip(
                _plain_weights(layer), target.weights
            ):
                if id(variable) == kernel_id:
                    new_variable.assign(kernel)
                else:
                    new_variable.assign(variable.numpy())
        else:
            for variable, new_variable in zip(layer.weights, target.weights):
                new_variable.assign(variable.numpy())
    return stripped


def _plain_weights(layer):
    """The masked layer's weights that its parent class also has."""
    extra = {
        id(getattr(layer, attr))
        for attr in (
            "kernel_mask",
            "kernel_mask_score",
            "mask_penalty_weight",
            "mask_frozen",
        )
        if getattr(layer, attr, None) is not None
    }
    return [v for v in layer.weights if id(v) not in extra]
