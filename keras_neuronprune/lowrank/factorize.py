"""`factorize_low_rank`: split each convolution into k x k (rank r) + 1 x 1."""

import keras
import numpy as np

from keras_neuronprune.graph import _keras_graph
from keras_neuronprune.lowrank.low_rank_projection import pop_layers
from keras_neuronprune.lowrank.low_rank_projection import select_layers
from keras_neuronprune.lowrank.low_rank_report import LayerFactorization
from keras_neuronprune.lowrank.low_rank_report import LowRankReport
from keras_neuronprune.lowrank.projection import kernel_matrix
from keras_neuronprune.lowrank.projection import target_rank
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction


def _numerical_rank(s, tolerance):
    if s.size == 0 or s[0] <= 0:
        return 1
    return max(1, int(np.sum(s > tolerance * s[0])))


def _clone_layer(layer):
    if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer)
    return layer.__class__.from_config(layer.get_config())


def _split_layers(layer, rank, name):
    """The two layers replacing `layer`: basis (rank r) then mixing."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.Dense):
        first = keras.layers.Dense(
            rank, use_bias=False, name=f"{name}_basis", dtype=layer.dtype_policy
        )
        second_config = dict(config)
        second = keras.layers.Dense.from_config(second_config)
        return first, second
    first_config = dict(config)
    first_config.update(
        {
            "name": f"{name}_basis",
            "filters": rank,
            "use_bias": False,
            "activation": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
        }
    )
    second_config = dict(config)
    ndim = len(layer.kernel_size)
    second_config.update(
        {
            "kernel_size": (1,) * ndim,
            "strides": (1,) * ndim,
            "padding": "valid",
            "dilation_rate": (1,) * ndim,
        }
    )
    return (
        layer.__class__.from_config(first_config),
        layer.__class__.from_config(second_config),
    )


def _plan_layer(layer, ranks, pruning_ratio, tolerance):
    """The rank and the two kernels of one layer's factorisation.

    Returns:
        (its `LayerFactorization` row, (rank, first kernel, second kernel)
        or None when the factorisation saves no parameter).
    """
    kernel = np.asarray(layer.kernel.numpy(), "float64")
    m = kernel_matrix(kernel)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    n_out, p = m.shape
    if layer.name in ranks:
        r = min(int(ranks[layer.name]), len(s))
    elif pruning_ratio is not None:
        r = target_rank(len(s), pruning_ratio)
    else:
        r = _numerical_rank(s, tolerance)
    before = layer.count_params()
    bias = n_out if layer.use_bias else 0
    after = r * (p + n_out) + bias
    if after >= before:
        row = LayerFactorization(
            layer.name, r, before, before, False, "no parameter saving"
        )
        return row, None
    first_kernel = vt[:r].T.reshape(kernel.shape[:-1] + (r,))
    mix = (u[:, :r] * s[:r]).T  # (r, N)
    second_kernel = mix.reshape((1,) * (kernel.ndim - 2) + mix.shape)
    if isinstance(layer, keras.layers.Dense):
        second_kernel = mix
    row = LayerFactorization(layer.name, r, before, after, True)
    return row, (r, first_kernel, second_kernel)


def factorize_low_rank(
    model,
    ranks=None,
    pruning_ratio=None,
    tolerance=1e-4,
    ignored_layers=None,
    **kwargs,
):
    """Returns a copy of `model` with each Conv/Dense split in two.

    A layer with kernel matrix `W = U S V^T` (`N` outputs x `P` =
    inputs*kernel_size) and rank `r` becomes a convolution with the
    original kernel size, strides, padding and dilation, `r` filters
    `V_r` and no bias, followed by a 1 x 1 convolution with kernel
    `U_r S_r`, the original bias and activation, and the original layer
    name (Dense layers become Dense(r) then Dense(N)). Layers for which
    `r (P + N) >= P N` are left whole. The input model is not modified; the
    result is a plain functional Keras model that saves and exports like
    any other.

    After LRPET training (`LowRankProjection`), kernels are exactly low
    rank and the default numerical rank (`tolerance`) recovers `r`, so the
    factorised model computes what the projected one does.

    Args:
        model: functional or Sequential model.
        ranks: dict layer name -> rank (overrides the rest).
        pruning_ratio: fraction of singular values to drop (LRPET's
            `floor(n - n * pruning_ratio)`); the SVD truncation is then
            lossy.
        tolerance: when neither applies, the rank is the number of
            singular values above `tolerance * sigma_max`.
        ignored_layers: layers left whole (names, layers or layer
            classes); every other supported layer except the output layers
            is considered.
        **kwargs: deprecated spellings, accepted with a
            `DeprecationWarning`: `prune_goal` (now `pruning_ratio`) and
            `layers` (the names of the only layers to consider).

    Returns:
        `(new_model, LowRankReport)`.

    Raises:
        ValueError: bad `pruning_ratio`, `ranks`, `ignored_layers` or
            `layers` entries, or a subclassed model.

    Example:
        >>> small, report = factorize_low_rank(model, pruning_ratio=0.5)
        >>> print(report)

    Reference:
        Guo et al., "Compact Model Training by Low-Rank Projection with
        Energy Transfer", IEEE TNNLS 2024, https://arxiv.org/abs/2204.05566
    """
    name = "prune_goal" if "prune_goal" in kwargs else "pruning_ratio"
    pruning_ratio = pop_renamed(
        kwargs,
        "prune_goal",
        "pruning_ratio",
        pruning_ratio,
        where="factorize_low_rank",
    )
    layers = pop_layers(kwargs, ignored_layers, "factorize_low_rank")
    reject_unknown(kwargs, "factorize_low_rank")
    check_fraction(pruning_ratio, name, allow_none=True)
    ranks = dict(ranks or {})
    functional = _keras_graph.as_functional(model)
    selected = [
        layer
        for layer, _ in select_layers(
            model, layers, bn_rectify=False, ignored_layers=ignored_layers
        )
    ]
    for name, r in ranks.items():
        if int(r) < 1:
            raise ValueError(
                f"`ranks` must be >= 1. Received: ranks[{name!r}]={r}"
            )
    by_name = {layer.name: layer for layer in selected}
    for name in ranks:
        if name not in by_name:
            selected += [layer for layer, _ in select_layers(model, [name])]
            by_name[name] = selected[-1]

    plans, rows = {}, []
    for layer in selected:
        row, plan = _plan_layer(layer, ranks, pruning_ratio, tolerance)
        rows.append(row)
        if plan is not None:
            plans[layer.name] = plan

    clones, created = {}, {}

    def operation_fn(op):
        if isinstance(op, keras.layers.Layer) and op.name in plans:
            if op.name not in created:
                created[op.name] = _split_layers(op, plans[op.name][0], op.name)
            first, second = created[op.name]

            def call(x, *args, **kwargs):
                return second(first(x))

            return call
        if isinstance(op, keras.layers.Layer):
            if id(op) not in clones:
                clones[id(op)] = (op, _clone_layer(op))
            return clones[id(op)][1]
        return op

    new_inputs = []
    for tensor in functional.inputs:
        input_layer = _keras_graph.tensor_producer(tensor)[0]
        new_inputs.append(
            keras.Input(
                batch_shape=tuple(tensor.shape),
                dtype=tensor.dtype,
                name=input_layer.name,
            )
        )
    outputs = _keras_graph.run_through_graph(
        functional,
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        operation_fn,
    )
    new_model = keras.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        outputs,
        name=model.name,
    )
    for original, clone in clones.values():
        clone.set_weights(original.get_weights())
    for name, (r, first_kernel, second_kernel) in plans.items():
        first, second = created[name]
        original = by_name[name]
        first.kernel.assign(first_kernel.astype(first.kernel.dtype))
        second.kernel.assign(
            np.reshape(second_kernel, second.kernel.shape).astype(
                second.kernel.dtype
            )
        )
        if original.use_bias:
            second.bias.assign(original.bias.numpy())
    report = LowRankReport(rows, model.count_params(), new_model.count_params())
    return new_model, report
