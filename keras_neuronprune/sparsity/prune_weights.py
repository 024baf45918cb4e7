"""`prune_weights`: wrap a model for weight-level (unstructured) sparsity."""

import warnings

import keras

from keras_neuronprune.core.pruned_model import PrunedModel
from keras_neuronprune.sparsity import _selection
from keras_neuronprune.sparsity._model_utils import check_functional
from keras_neuronprune.sparsity._model_utils import clone_layer_from_config
from keras_neuronprune.sparsity._model_utils import clone_model
from keras_neuronprune.sparsity._model_utils import copy_weights
from keras_neuronprune.sparsity._model_utils import iter_layers
from keras_neuronprune.sparsity._model_utils import layers_by_path
from keras_neuronprune.sparsity.layers import MASKED_CLASSES
from keras_neuronprune.sparsity.methods import METHODS
from keras_neuronprune.sparsity.weight_pruning_controller import (
    WeightPruningController,
)

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


def _select_layers(model, layers, method_cls, xnnpack_sparse):
    supported = {}
    for path, layer in iter_layers(model):
        if type(layer) in MASKED_CLASSES and layer.built:
            supported[path] = layer
    if callable(layers) and not isinstance(layers, (list, tuple, str)):
        chosen = [p for p, layer in supported.items() if layers(layer)]
        explicit = False
    elif layers is None:
        chosen = list(supported)
        explicit = False
    else:
        if isinstance(layers, str):
            layers = [layers]
        all_layers = layers_by_path(model)
        chosen = []
        for name in layers:
            if name not in all_layers:
                raise ValueError(
                    f"`layers` names a layer that is not in the model. "
                    f"Received: {name!r}; model layers: {sorted(all_layers)}"
                )
            if name not in supported:
                layer = all_layers[name]
                raise ValueError(
                    f"Layer {name!r} ({type(layer).__name__}) cannot be "
                    "weight-pruned: supported layers are exactly "
                    f"{sorted(c.__name__ for c in MASKED_CLASSES)}. "
                    f"Received: layers containing {name!r}"
                )
            chosen.append(name)
        explicit = True
    supports = getattr(method_cls, "supports_layer", None)
    if supports is not None:
        for name in list(chosen):
            masked_cls = MASKED_CLASSES[type(supported[name])]
            if not supports(masked_cls):
                if explicit:
                    raise ValueError(
                        f"method={method_cls.name!r} cannot prune layer "
                        f"{name!r} ({type(supported[name]).__name__}). "
                        f"Received: layers containing {name!r}"
                    )
                chosen.remove(name)
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
            f"{sorted(c.__name__ for c in MASKED_CLASSES)} among the selected "
            f"ones. Received: layers={layers!r}"
        )
    return {name: supported[name] for name in chosen}


def prune_weights(
    model,
    method="magnitude",
    sparsity=None,
    schedule=None,
    data=None,
    *,
    loss=None,
    layers=None,
    distribution=None,
    block_size=None,
    sparsity_m_by_n=None,
    threshold="fraction",
    quality=None,
    update_frequency=None,
    drop_fraction=0.3,
    drop_fraction_decay="cosine",
    end_step=None,
    shrink_ratio=0.95,
    penalty=0.1,
    penalty_rate=0.1,
    mask_init=0.05,
    num_batches=1,
    seed=None,
    xnnpack_sparse=False,
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

    Methods:

    * `"magnitude"` (Han et al. 2015; tfmot's `prune_low_magnitude`): prune
      the smallest `|w|` at every pruning step of `schedule`;
      `threshold="std"` prunes `|w| < quality * std(W)` instead.
    * `"snip"` (Lee et al. 2019): once, before training, keep the global
      top `|w * dL/dw|` on one batch of `data`.
    * `"rigl"` (Evci et al. 2020): random ERK-sparse start, then every
      `update_frequency` steps drop the smallest `|w|` and grow the largest
      dense gradients (`data`), until `end_step`.
    * `"scl"` (Tang et al. 2022): masks learned with a straight-through
      estimator and a connection-count penalty; frozen at `end_step`.
    * `"iss_p"` (Wang et al. 2023): after every step shrink the smallest
      weights by `shrink_ratio`; hard-prune at `end_step`.
    * `"nnrelief"` (Dekhovich et al. 2021): prune the connections carrying
      the smallest share of each neuron's input activity (`data`).

    Args:
        model: a built functional or Sequential Keras model (nested models
            are handled).
        method: one of the methods above.
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
            a `keras.utils.PyDataset` or any iterable of batches.
        loss: the loss for gradients (snip, rigl); default: the loss `model`
            was compiled with.
        layers: which layers to prune: None (all supported), a list of
            layer names (`"outer/inner"` inside nested models), or a
            callable `layer -> bool`.
        distribution: how the target spreads over layers: `"uniform"` (every
            layer at the target), `"erk"` (Erdos-Renyi-Kernel, RigL) or
            `"global"` (one ranking across layers). Defaults: magnitude and
            iss_p uniform, rigl erk, snip / scl / nnrelief global.
        block_size: `(rows, cols)`: prune tiles of the kernel viewed as a
            `(fan-in, outputs)` matrix (magnitude, snip, iss_p).
        sparsity_m_by_n: `(m, n)`: prune `m` of every `n` consecutive
            weights along the input channels, tfmot's convention ((2, 4) is
            2:4 sparsity).
        threshold: magnitude only: `"fraction"` or `"std"`.
        quality: magnitude with `threshold="std"`: the multiple of the
            layer's weight standard deviation below which weights go.
        update_frequency: rigl: steps between mask updates (ΔT, default
            100); scl: steps between penalty adaptations (default 10).
        drop_fraction: rigl: initial fraction of active weights replaced
            per update (α, 0.3).
        drop_fraction_decay: rigl: `"cosine"` (default) or `"constant"`.
        end_step: rigl: last update step (T_end, required; the paper uses
            75% of training); iss_p: step of the hard pruning (required);
            scl: step at which masks freeze (optional).
        shrink_ratio: iss_p: factor applied to the smallest weights after
            every step (0.95).
        penalty: scl: initial connection-count penalty λ (0.1, in units of
            a feature's RMS mask gradient).
        penalty_rate: scl: relative change of λ per adaptation (0.1).
        mask_init: scl: initial mask score (0.05).
        num_batches: snip / nnrelief: batches of `data` per scoring.
        seed: rigl: seed of the random initial masks.
        xnnpack_sparse: prune only 1x1 stride-1 `Conv2D` layers, the pattern
            XNNPACK executes with sparse kernels (like tfmot's
            `PruneForLatencyOnXNNPack`); export with
            `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` to use them.

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
    if method not in PUBLIC_METHODS:
        raise ValueError(
            f"`method` must be one of {list(PUBLIC_METHODS)}. "
            f"Received: method={method!r}"
        )
    from keras_neuronprune.utils.gradients import check_backend_support

    check_backend_support(method)
    method_cls = METHODS[method]
    controller = WeightPruningController(
        method=method,
        sparsity=sparsity,
        schedule=schedule,
        distribution=distribution,
        block_size=block_size,
        sparsity_m_by_n=sparsity_m_by_n,
        threshold=threshold,
        quality=quality,
        update_frequency=update_frequency,
        drop_fraction=drop_fraction,
        drop_fraction_decay=drop_fraction_decay,
        end_step=end_step,
        shrink_ratio=shrink_ratio,
        penalty=penalty,
        penalty_rate=penalty_rate,
        mask_init=mask_init,
        num_batches=num_batches,
        loss=loss,
        seed=seed,
        xnnpack_sparse=xnnpack_sparse,
    )
    if method_cls.needs_data and data is None:
        raise ValueError(
            f"method={method!r} needs `data` (batches of (x, y)) to "
            + {
                "snip": "compute its sensitivities at initialisation",
                "rigl": "compute the gradients that decide regrowth",
                "nnrelief": "measure the activity through each connection",
            }[method]
            + ". Received: data=None"
        )
    if method_cls.needs_loss and loss is None and model.loss is None:
        raise ValueError(
            f"method={method!r} needs a loss for its gradients: pass "
            "`loss=` or compile `model` first. Received: loss=None"
        )
    selected = _select_layers(model, layers, method_cls, xnnpack_sparse)
    for name, layer in selected.items():
        masked_cls = MASKED_CLASSES[type(layer)]
        shape = tuple(layer.kernel.shape)
        if controller.block_size:
            _selection.check_block_size(
                name, shape, masked_cls.num_output_axes, controller.block_size
            )
        if controller.sparsity_m_by_n:
            _selection.check_m_by_n(
                name,
                shape,
                masked_cls.num_output_axes,
                controller.sparsity_m_by_n,
            )

    selected_ids = {id(layer) for layer in selected.values()}
    extras = {}
    if method_cls.learned_mask:
        extras = {
            "learned_mask": True,
            "mask_init": controller.mask_init,
            "mask_penalty": controller.penalty,
        }

    def clone_function(layer):
        if id(layer) in selected_ids:
            config = {**layer.get_config(), **extras}
            return clone_layer_from_config(
                layer, MASKED_CLASSES[type(layer)], config
            )
        return clone_layer_from_config(layer)

    rebuilt = clone_model(model, clone_function)
    new_layers = layers_by_path(rebuilt)
    for path, layer in iter_layers(model):
        copy_weights(layer, new_layers[path])
    pruned = PrunedModel(
        rebuilt.input, rebuilt.output, name=model.name, controller=controller
    )
    controller.set_data(data)
    controller.fallback_loss = model.loss
    controller.initialize(pruned)
    return pruned
