"""`attach_regularizer`: put a regulariser on one weight of a built layer.

Used by `prune_structured` to add a criterion's sparsity regulariser
(`criterion.regularizer_for(layer)`, on `criterion.regularized_weight(
layer)`) to the layers of the model it trains. It sets both the layer
attribute that `get_config` serialises (`kernel_regularizer`,
`gamma_regularizer`, `pointwise_regularizer`...) and the variable's own
regulariser, which is what `layer.losses` reads; setting only the attribute
after `build` would have no effect on training.
"""

_CONFIG_ATTRIBUTE = {
    "kernel": "kernel_regularizer",
    "gamma": "gamma_regularizer",
    "beta": "beta_regularizer",
    "bias": "bias_regularizer",
    "depthwise_kernel": "depthwise_regularizer",
    "pointwise_kernel": "pointwise_regularizer",
    "gate": "gate_regularizer",
}


def attach_regularizer(layer, weight_name, regularizer):
    """Sets `regularizer` on the weight `weight_name` of a built layer.

    Args:
        layer: a built Keras layer.
        weight_name: the variable's short name (`"kernel"`, `"gamma"`...).
        regularizer: a `keras.regularizers.Regularizer` or None (removes).

    Raises:
        ValueError: if the layer is not built or has no such weight.

    Example:

    ```python
    attach_regularizer(model.get_layer("bn1"), "gamma",
                       keras_neuronprune.regularizers.SlimmingRegularizer())
    ```
    """
    if not layer.built:
        raise ValueError(
            f"`layer` must be built. Received: unbuilt layer '{layer.name}'"
        )
    if weight_name == "gamma" and hasattr(layer, "set_gamma_regularizer"):
        # BoundedBatchNormalization scales the penalty's gradient like the
        # loss gradient; let it wrap the regulariser.
        layer.set_gamma_regularizer(regularizer)
        return
    variable = None
    for weight in layer.weights:
        if weight.name.split("/")[-1] == weight_name:
            variable = weight
            break
    if variable is None:
        names = [w.name.split("/")[-1] for w in layer.weights]
        raise ValueError(
            f"Layer '{layer.name}' has no weight named {weight_name!r}. "
            f"Its weights: {names}"
        )
    attribute = _CONFIG_ATTRIBUTE.get(weight_name)
    if attribute is not None and hasattr(layer, attribute):
        setattr(layer, attribute, regularizer)
    variable.regularizer = regularizer
