"""Walking, cloning and copying Keras models (private helpers)."""

import keras
import numpy as np

from keras_neuronprune.graph._keras_graph import is_functional
from keras_neuronprune.graph._keras_graph import is_sequential
from keras_neuronprune.sparsity.layers import WeightMaskedMixin


def is_nested_model(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "layers")


def iter_layers(model, prefix=""):
    """Yields `(path, layer)` for every non-model layer, nested included.

    Paths are `"outer_model/inner_layer"` for layers of nested models, as in
    the project's channel-group naming.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = f"{prefix}{layer.name}"
        if is_nested_model(layer):
            yield from iter_layers(layer, prefix=f"{path}/")
        else:
            yield path, layer


def masked_layers(model):
    """`[(path, layer)]` of the weight-masked layers of `model`."""
    return [
        (path, layer)
        for path, layer in iter_layers(model)
        if isinstance(layer, WeightMaskedMixin)
    ]


def check_functional(model, argument="model"):
    """Raises unless `model` is a built functional or Sequential model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{argument}` must be a keras.Model. "
            f"Received: {argument} of type {type(model).__name__}"
        )
    if is_sequential(model):
        if not model.built or not getattr(model, "inputs", None):
            raise ValueError(
                f"`{argument}` is a Sequential model that is not built: "
                "give it a `keras.Input` (or call `build`) first. "
                f"Received: {argument}={model.name!r}"
            )
        return
    if not is_functional(model):
        raise ValueError(
            f"`{argument}` must be a functional or Sequential model; "
            "subclassed models have no graph to rebuild. "
            f"Received: {argument}={model.name!r} of type "
            f"{type(model).__name__}"
        )


def clone_layer_from_config(layer, cls=None, config=None):
    cls = cls or layer.__class__
    config = layer.get_config() if config is None else config
    try:
        return cls.from_config(config)
    except Exception as error:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot be "
            f"re-created from its config as {cls.__name__}: {error}. Give "
            "the layer a complete `get_config`."
        ) from error


def clone_model(model, clone_function):
    """Clones a functional or Sequential model (nested models included).

    Returns a plain functional `keras.Model` with the same layer names.
    """
    clone = keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
    if is_sequential(clone):
        # A Sequential model has one input and one output.
        inputs, outputs = clone.inputs[0], clone.outputs[0]
    else:
        inputs, outputs = clone.input, clone.output
    return keras.Model(inputs, outputs, name=model.name)


def copy_weights(source, target):
    """Copies `source`'s variables into `target`'s variables of the same name.

    `target` may have extra variables (masks), which are left as they are.
    """
    by_name = {}
    for variable in target.weights:
        by_name.setdefault(_short(variable), []).append(variable)
    for variable in source.weights:
        candidates = by_name.get(_short(variable))
        if not candidates:
            raise ValueError(
                f"Cannot copy weight {_short(variable)!r} of layer "
                f"{source.name!r}: the rebuilt layer has no such weight."
            )
        candidates.pop(0).assign(np.asarray(variable.numpy()))


def _short(variable):
    return variable.name.split("/")[-1]


def layers_by_path(model):
    return dict(iter_layers(model))
