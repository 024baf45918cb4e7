"""`strip_pruning`: turn a model under pruning into its final plain model."""

import numpy as np

from keras_neuronprune.pruning._surgery import build_plain_clone


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

    For weight sparsity (`prune_weights`), this delegates to the model's
    controller (`model.controller.strip(model)`).

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
    from keras_neuronprune.core.pruned_model import PrunedModel
    from keras_neuronprune.pruning.structured_pruning_controller import (
        StructuredPruningController,
    )

    if not isinstance(model, PrunedModel) or model.controller is None:
        raise ValueError(
            "`strip_pruning` expects a model returned by "
            "`keras_neuronprune.prune_structured` or `prune_weights` (a "
            "PrunedModel). Received: "
            f"model={getattr(model, 'name', model)!r} of type "
            f"{type(model).__name__}"
        )
    if isinstance(model.controller, StructuredPruningController):
        return strip_structured(model, check=check)
    return model.controller.strip(model)


def strip_structured(model, check=True):
    """`strip_pruning` for a `StructuredPruningController` model."""
    from keras_neuronprune.rewrite import thin_model

    controller = model.controller
    keep = controller.keep_sets(model)
    plain = build_plain_clone(model)
    if keep:
        final, _ = thin_model(plain, keep, allow_inexact=True)
    else:
        final = plain
    final.name = model.name
    if check:
        exact = all(g.exact for g in controller.groups if g.name in keep)
        if exact:
            check_same_outputs(model, final)
    return final


def exact_cost(plain, keep, input_shape=None):
    """`(params, flops)` of `plain` (see `build_plain_clone`) thinned to
    `keep`, counted by `count_cost` (at `input_shape` where given)."""
    from keras_neuronprune.cost import count_cost
    from keras_neuronprune.rewrite import thin_model

    thin = thin_model(plain, keep, allow_inexact=True)[0] if keep else plain
    if input_shape is not None:
        input_shape = _as_shape_argument(input_shape)
    cost = count_cost(thin, input_shape=input_shape)
    return cost.params, cost.flops


def _as_shape_argument(shape):
    if all(d is None or isinstance(d, int) for d in shape):
        return tuple(shape)
    return [tuple(s) for s in shape]


def random_inputs(model, batch_size=2, seed=0):
    """A random batch matching the model's inputs (None dims -> 16), in the
    structure the model takes (one array, a list or a dict)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [batch_size] + [
            16 if d is None else int(d) for d in tuple(tensor.shape)[1:]
        ]
        dtype = str(tensor.dtype)
        if "int" in dtype or "bool" in dtype:
            arrays.append(np.zeros(shape, dtype))
        else:
            arrays.append(rng.normal(size=shape).astype(dtype))
    import keras

    structure = model.input
    if isinstance(structure, dict) or (
        isinstance(structure, (list, tuple)) and len(arrays) > 1
    ):
        return keras.tree.pack_sequence_as(structure, arrays)
    return arrays[0] if len(arrays) == 1 else arrays


def check_same_outputs(reference, candidate, rtol=1e-4, atol=1e-4):
    """Raises RuntimeError if the two models' outputs differ."""
    import keras

    x = random_inputs(reference)
    expected = keras.tree.flatten(reference(x, training=False))
    actual = keras.tree.flatten(candidate(x, training=False))
    for e, a in zip(expected, actual):
        e = keras.ops.convert_to_numpy(e)
        a = keras.ops.convert_to_numpy(a)
        scale = max(1.0, float(np.max(np.abs(e))) if e.size else 1.0)
        if e.shape != a.shape or not np.allclose(
            e, a, rtol=rtol, atol=atol * scale
        ):
            diff = float(np.max(np.abs(e - a))) if e.shape == a.shape else None
            raise RuntimeError(
                "The stripped model does not compute what the pruned model "
                f"computes (max abs difference {diff}, shapes {e.shape} vs "
                f"{a.shape}). Please report this with the model summary."
            )
