"""`strip_pruning`: turn a model under pruning into its final plain model.

A thin front: the model's controller strips (`PruningController.strip`),
so this module imports no controller.
"""

from keras_neuronprune.core.pruned_model import PrunedModel


def strip_pruning(model, check=True):
    """Returns the final, plain Keras model of a model under pruning.

    For channel pruning (`prune_structured`), the channels removed by the
    masks are removed physically: every masked layer becomes its Keras
    parent with the same weights, every `BoundedBatchNormalization` becomes
    a plain `BatchNormalization` whose `gamma` is `sigmoid(gamma)` (and
    `beta = beta * mask`, zeros without a shift), gates disappear, the
    library's regularisers are dropped, and `keras_neuronprune.thin_model`
    cuts the removed channels out of every layer of their group. The result
    contains only standard Keras layers: it saves and loads as a plain
    `.keras` model and converts to TFLite. It computes what `model`
    computes in inference (checked on random inputs when `check=True`).

    For weight sparsity (`prune_weights`), the masked weights become exact
    zeros (`keras_neuronprune.sparsity.strip_weight_pruning`). Either way
    this is `model.controller.strip(model, check=check)`.

    Args:
        model: a `PrunedModel` from `prune_structured` or `prune_weights`.
        check: compare the outputs of `model` and of the result on a random
            batch and raise if they differ.

    Returns:
        A new Keras model; `model` is not modified.

    Raises:
        ValueError: if `model` is not a `PrunedModel`.
        RuntimeError: if the check finds different outputs.

    Example:
    ```python
    pruned = keras_neuronprune.prune_structured(model, pruning_ratio=0.5)
    pruned.compile(...)
    pruned.fit(x, y, callbacks=[keras_neuronprune.callbacks.UpdatePruning()])
    final = keras_neuronprune.strip_pruning(pruned)
    final.save("final.keras")
    ```
    """
    if not isinstance(model, PrunedModel) or model.controller is None:
        raise ValueError(
            "`strip_pruning` expects a model returned by "
            "`keras_neuronprune.prune_structured` or `prune_weights` (a "
            "PrunedModel). Received: "
            f"model={getattr(model, 'name', model)!r} of type "
            f"{type(model).__name__}"
        )
    if check:
        # The default keeps controllers whose `strip(model)` predates
        # `check` working.
        return model.controller.strip(model)
    return model.controller.strip(model, check=False)
