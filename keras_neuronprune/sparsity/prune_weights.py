"""`prune_weights`: wrap a model for weight-level (unstructured) sparsity."""

import warnings

import keras

from keras_neuronprune.core.pruned_model import PrunedModel
from keras_neuronprune.core.surgery import check_functional
from keras_neuronprune.core.surgery import clone_layer_from_config
from keras_neuronprune.core.surgery import clone_model
from keras_neuronprune.core.surgery import copy_weights
from keras_neuronprune.core.surgery import iter_layers
from keras_neuronprune.core.surgery import layers_by_path
from keras_neuronprune.sparsity import _selection
from keras_neuronprune.sparsity.layers import WEIGHT_MASKED_CLASSES
from keras_neuronprune.sparsity.methods import METHOD_ARGUMENTS
from keras_neuronprune.sparsity.methods import get_method
from keras_neuronprune.sparsity.weight_pruning_controller import (
    WeightPruningController,
)
from keras_neuronprune.utils.renamed_arguments import reject_unknown

PUBLIC_METHODS = ("magnitude", "snip", "rigl", "scl", "iss_p", "nnrelief")


def _is_xnnpack_sparse_conv(layer):
    """XNNPACK's sparse 1x1 convolution: Conv2D 1x1, stride 1, no groups."""
    return (
        type(layer) is keras.layers.Conv2D
        and tuple(layer.kernel_size) == (1, 1)
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.groups == 1
        and layer.data_format == "channels_last"
    )


def _check_xnnpack_graph(model):
    """Warns when the model lacks the ends of XNNPACK's sparse subgraph."""
    layers = [layer for _, layer in iter_layers(model)]
    has_stem = any(
        type(layer) is keras.layers.Conv2D
        and tuple(layer.kernel_size) == (3, 3)
        and tuple(layer.strides) == (2, 2)
        and int(layer.kernel.shape[-2]) == 3
        for layer in layers
    )
    has_mean = any(
        isinstance(layer, keras.layers.GlobalAveragePooling2D)
        for layer in layers
    )
    if not (has_stem and has_mean):
        warnings.warn(
            "xnnpack_sparse=True: XNNPACK runs sparse 1x1 convolutions only "
            "inside a subgraph that starts with a 3x3 stride-2 Conv2D on 3 "
            "input channels (padding 1 on each side) and ends with a "
            "spatial mean (GlobalAveragePooling2D); this model has "
            f"{'no such stem' if not has_stem else 'no spatial mean'}, so "
            "the sparse kernels will likely not be used.",
            stacklevel=3,
        )


def _supported_layers(model):
    return {
        path: layer
        for path, layer in iter_layers(model)
        if type(layer) in WEIGHT_MASKED_CLASSES and layer.built
    }


def _matches(path, name):
    return (
        path == name
        or path.startswith(f"{name}/")
        or (path.rsplit("/", 1)[-1] == name)
    )


def _ignored_paths(model, ignored_layers):
    """The paths of the layers `ignored_layers` names (or contains)."""
    if ignored_layers is None:
        return set()
    if isinstance(ignored_layers, (str, keras.layers.Layer, type)):
        ignored_layers = [ignored_layers]
    all_layers = layers_by_path(model)
    ignored = set()
    for item in ignored_layers:
        if isinstance(item, type) and issubclass(item, keras.layers.Layer):
            found = {p for p, la in all_layers.items() if isinstance(la, item)}
        elif isinstance(item, (str, keras.Model)):
            name = item if isinstance(item, str) else item.name
            found = {p for p in all_layers if _matches(p, name)}
        elif isinstance(item, keras.layers.Layer):
            found = {p for p, la in all_layers.items() if la is item}
        else:
            raise ValueError(
                "`ignored_layers` must hold layer names, layers or layer "
                f"classes. Received: ignored_layers={ignored_layers!r}"
            )
        if not found and not isinstance(item, type):
            raise ValueError(
                "`ignored_layers` names a layer that is not in the model. "
                f"Received: ignored_layers entry {item!r}; model layers: "
                f"{sorted(all_layers)}"
            )
        ignored |= found
    return ignored


def _ignored_from_layers(model, layers, method):
    """The exclusion equivalent to the deprecated `layers=` selection."""
    supported = _supported_layers(model)
    if callable(layers) and not isinstance(layers, (list, tuple, str)):
        return {p for p, layer in supported.items() if not layers(layer)}
    if isinstance(layers, str):
        layers = [layers]
    all_layers = layers_by_path(model)
    supports = getattr(method, "supports_layer", None)
    for name in layers:
        if name not in all_layers:
            raise ValueError(
                f"`layers` names a layer that is not in the model. "
                f"Received: {name!r}; model layers: {sorted(all_layers)}"
            )
        layer = all_layers[name]
        if name not in supported:
            raise ValueError(
                f"Layer {name!r} ({type(layer).__name__}) cannot be "
                "weight-pruned: supported layers are exactly "
                f"{sorted(c.__name__ for c in WEIGHT_MASKED_CLASSES)}. "
                f"Received: layers containing {name!r}"
            )
        if supports is not None and not supports(
            WEIGHT_MASKED_CLASSES[type(layer)]
        ):
            raise ValueError(
                f"method={method.name!r} cannot prune layer {name!r} "
                f"({type(layer).__name__}). Received: layers containing "
                f"{name!r}"
            )
    return set(supported) - set(layers)


def _select_layers(model, ignored, method, xnnpack_sparse):
    supported = _supported_layers(model)
    supports = getattr(method, "supports_layer", None)
    chosen = [
        path
        for path, layer in supported.items()
        if path not in ignored
        and (supports is None or supports(WEIGHT_MASKED_CLASSES[type(layer)]))
    ]
    if xnnpack_sparse:
        chosen = [n for n in chosen if _is_xnnpack_sparse_conv(supported[n])]
        if not chosen:
            raise ValueError(
                "xnnpack_sparse=True prunes only 1x1 stride-1 Conv2D layers "
                "(XNNPACK's sparse kernel) and the model has none among the "
                f"selected layers. Received: xnnpack_sparse={xnnpack_sparse}"
            )
        _check_xnnpack_graph(model)
    if not chosen:
        raise ValueError(
            "No layer to prune: the model has no built layer of type "
            f"{sorted(c.__name__ for c in WEIGHT_MASKED_CLASSES)} outside "
            f"`ignored_layers`. Received: ignored_layers={sorted(ignored)!r}"
        )
    return {name: supported[name] for name in chosen}


def _check_patterns(selected, controller):
    for name, layer in selected.items():
        axes = WEIGHT_MASKED_CLASSES[type(layer)].num_output_axes
        shape = tuple(layer.kernel.shape)
        if controller.block_size:
            _selection.check_block_size(
                name, shape, axes, controller.block_size
            )
        if controller.sparsity_m_by_n:
            _selection.check_m_by_n(
                name, shape, axes, controller.sparsity_m_by_n
            )


def _rebuild(model, selected, extras):
    """Clones `model` with the `selected` layers weight-masked."""
    selected_ids = {id(layer) for layer in selected.values()}

    def clone_function(layer):
        if id(layer) in selected_ids:
            config = {**layer.get_config(), **extras}
            return clone_layer_from_config(
                layer, WEIGHT_MASKED_CLASSES[type(layer)], config
            )
        return clone_layer_from_config(layer)

    rebuilt = clone_model(model, clone_function)
    new_layers = layers_by_path(rebuilt)
    for path, layer in iter_layers(model):
        copy_weights(layer, new_layers[path])
    return rebuilt


def prune_weights(
    model,
    method="magnitude",
    sparsity=None,
    schedule=None,
    data=None,
    *,
    loss=None,
    ignored_layers=None,
    distribution=None,
    block_size=None,
    sparsity_m_by_n=None,
    xnnpack_sparse=False,
    **kwargs,
):
    """Returns a copy of `model` ready for weight-level sparse training.

    Every selected `Dense`, `Conv1D/2D/3D` and `DepthwiseConv1D/2D` layer is
    replaced by its weight-masked version (same name, same weights, plus a
    `kernel_mask`), and the result is a `keras_neuronprune.core.PrunedModel`
    whose `controller` is a `WeightPruningController`. Compile it and train
    it with the `keras_neuronprune.callbacks.UpdatePruning` callback (and
    optionally `PruningSummaries`); then call
    `keras_neuronprune.sparsity.strip_weight_pruning` (or
    `model.controller.strip(model)`) to get plain Keras layers whose
    kernels hold exact zeros. `model` itself is never modified.

    Unstructured sparsity keeps dense shapes: it shrinks the compressed
    (gzipped) file but rarely speeds up inference (see docs/sparsity.md).

    Methods (`keras_neuronprune.sparsity.methods`; a name gives the
    default-configured method, an object carries its own hyper-parameters,
    e.g. `method=RigLMethod(end_step=3000, drop_fraction=0.3)`):

    * `"magnitude"` / `MagnitudeMethod(threshold, quality)` (Han et al.
      2015; tfmot's `prune_low_magnitude`): prune the smallest `|w|` at
      every pruning step of `schedule`; `threshold="std"` prunes
      `|w| < quality * std(W)` instead.
    * `"snip"` / `SnipMethod(num_batches)` (Lee et al. 2019): once, before
      training, keep the global top `|w * dL/dw|` on one batch of `data`.
    * `RigLMethod(end_step, drop_fraction, drop_fraction_decay,
      update_frequency, seed)` (Evci et al. 2020): random ERK-sparse start,
      then every `update_frequency` steps drop the smallest `|w|` and grow
      the largest dense gradients (`data`), until `end_step`.
    * `"scl"` / `SclMethod(end_step, penalty, penalty_rate, mask_init,
      update_frequency)` (Tang et al. 2022): masks learned with a
      straight-through estimator and a connection-count penalty.
    * `IssPMethod(end_step, shrink_ratio)` (Wang et al. 2023): after every
      step shrink the smallest weights by `shrink_ratio`; hard-prune at
      `end_step`.
    * `"nnrelief"` / `NNReliefMethod(num_batches)` (Dekhovich et al. 2021):
      prune the connections carrying the smallest share of each neuron's
      input activity (`data`).

    Args:
        model: a built functional or Sequential Keras model (nested models
            are handled).
        method: a method name or object (above).
        sparsity: the target fraction of zero weights among the pruned
            kernels, in [0, 1). Optional when `schedule` gives it, implied
            by `sparsity_m_by_n`, and for `"scl"` (then the penalty is not
            adapted and the sparsity is whatever training learns).
        schedule: when to prune and to what sparsity (magnitude, iss_p,
            nnrelief, scl): any object with tfmot's signature
            `schedule(step) -> (should_prune, sparsity)`, e.g.
            `keras_neuronprune.sparsity.schedules.PolynomialDecay` or a
            tfmot schedule. Default: `ConstantSparsity(sparsity)` from step
            0 (every 100 steps; every step for iss_p).
        data: `(x, y)` batches for the methods that need them (snip, rigl,
            nnrelief): a tuple of arrays (one batch), a `tf.data.Dataset`,
            a `keras.utils.PyDataset` or any iterable of batches. After
            loading a saved model, `model.controller.set_data(data)`.
        loss: the loss for gradients (snip, rigl); default: the loss `model`
            was compiled with.
        ignored_layers: layers never pruned: names (`"outer/inner"` inside
            nested models, or a layer's own name; a nested model's name
            covers its layers), layer objects or layer classes.
        distribution: how the target spreads over layers: `"uniform"` (every
            layer at the target), `"erk"` (Erdos-Renyi-Kernel, RigL) or
            `"global"` (one ranking across layers). Defaults: magnitude and
            iss_p uniform, rigl erk, snip / scl / nnrelief global.
        block_size: `(rows, cols)`: prune tiles of the kernel viewed as a
            `(fan-in, outputs)` matrix (magnitude, snip, iss_p).
        sparsity_m_by_n: `(m, n)`: prune `m` of every `n` consecutive
            weights along the input channels, tfmot's convention ((2, 4) is
            2:4 sparsity).
        xnnpack_sparse: prune only 1x1 stride-1 `Conv2D` layers, the pattern
            XNNPACK executes with sparse kernels (like tfmot's
            `PruneForLatencyOnXNNPack`); export with
            `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` to use them.
        **kwargs: deprecated spellings, accepted for one release with a
            `DeprecationWarning`: `layers=` (the layers to prune: names or a
            callable `layer -> bool`; converted to the equivalent
            `ignored_layers`) and the method hyper-parameters `threshold`,
            `quality`, `update_frequency`, `drop_fraction`,
            `drop_fraction_decay`, `end_step`, `shrink_ratio`, `penalty`,
            `penalty_rate`, `mask_init`, `num_batches`, `seed` (forwarded
            to the constructor of the method named by `method`).

    Returns:
        A `PrunedModel` (uncompiled) with weight-masked layers.

    Raises:
        ValueError: for a bad argument (naming it and the received value),
            a method that needs `data` or a loss without them, or a layer
            whose kernel shape does not admit `block_size` /
            `sparsity_m_by_n` (naming the layer).
        TypeError: if `model` is not a Keras model.

    Example:
    ```python
    pruned = keras_neuronprune.sparsity.prune_weights(
        model,
        sparsity=0.9,
        schedule=keras_neuronprune.sparsity.schedules.PolynomialDecay(
            0.0, 0.9, begin_step=0, end_step=2000),
        ignored_layers=["logits"],
    )
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=5,
               callbacks=[keras_neuronprune.callbacks.UpdatePruning()])
    final = keras_neuronprune.sparsity.strip_weight_pruning(pruned)
    ```

    Reference:
        Han et al., arXiv:1506.02626; Lee et al., arXiv:1810.02340; Evci et
        al., arXiv:1911.11134; Tang et al., arXiv:2201.05020; Wang et al.,
        arXiv:2211.13654; Dekhovich et al., arXiv:2109.10795.
    """
    check_functional(model)
    layers = kwargs.pop("layers", None)
    method_kwargs = {k: kwargs.pop(k) for k in METHOD_ARGUMENTS if k in kwargs}
    reject_unknown(kwargs, "prune_weights")
    method = get_method(
        method, method_kwargs, where="prune_weights", names=PUBLIC_METHODS
    )
    from keras_neuronprune.utils.gradients import check_backend_support

    check_backend_support(method.name)
    controller = WeightPruningController(
        method=method,
        sparsity=sparsity,
        schedule=schedule,
        distribution=distribution,
        block_size=block_size,
        sparsity_m_by_n=sparsity_m_by_n,
        loss=loss,
        xnnpack_sparse=xnnpack_sparse,
    )
    method = controller.algorithm
    if method.needs_data and data is None:
        raise ValueError(
            f"method={method.name!r} needs `data` (batches of (x, y)) to "
            f"{method.data_purpose}. Received: data=None"
        )
    if method.needs_loss and loss is None and model.loss is None:
        raise ValueError(
            f"method={method.name!r} needs a loss for its gradients: pass "
            "`loss=` or compile `model` first. Received: loss=None"
        )
    ignored = _ignored_paths(model, ignored_layers)
    if layers is not None:
        if ignored_layers is not None:
            raise ValueError(
                "Pass `ignored_layers` or the deprecated `layers`, not both. "
                f"Received: ignored_layers={ignored_layers!r}, "
                f"layers={layers!r}"
            )
        warnings.warn(
            "`prune_weights(layers=...)` is deprecated; name the layers to "
            "leave dense with `ignored_layers=` instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        ignored = _ignored_from_layers(model, layers, method)
    selected = _select_layers(model, ignored, method, xnnpack_sparse)
    _check_patterns(selected, controller)
    rebuilt = _rebuild(model, selected, method.masked_layer_config())
    pruned = PrunedModel(
        rebuilt.input, rebuilt.output, name=model.name, controller=controller
    )
    controller.set_data(data)
    controller.fallback_loss = model.loss
    controller.initialize(pruned)
    return pruned
