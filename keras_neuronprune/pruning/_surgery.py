"""Cloning a model into its masked training form and back (private).

`build_masked_clone` turns the user's model into the model that trains
under pruning: layers of prunable groups become their masked versions
(`MaskedConv2D`...; `BoundedBatchNormalization` for RNI), consumers with no
masked version read their input through a `ChannelGate`, gradient criteria
get a gate after each BatchNormalization, and criterion regularisers are
attached. `build_plain_clone` goes back: masked layers become their Keras
parents with the masks folded into the weights, bounded BNs become plain
BatchNormalization (`gamma = sigmoid(gamma)`), gates disappear and the
library's regularisers are dropped, so the result uses only standard Keras
layers. Both never touch the model they read.
"""

import keras
import numpy as np

from keras_neuronprune.core.surgery import check_same_outputs
from keras_neuronprune.core.surgery import clone_model
from keras_neuronprune.core.surgery import copy_weights
from keras_neuronprune.core.surgery import iter_layers
from keras_neuronprune.core.surgery import iter_operations
from keras_neuronprune.graph import _keras_graph as kg
from keras_neuronprune.graph.attention_handlers import HEADS
from keras_neuronprune.graph.attention_handlers import INTERNAL
from keras_neuronprune.layers import GATE_SUFFIX
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.layers import ChannelGate
from keras_neuronprune.layers import masked_class_for
from keras_neuronprune.layers._masking import MaskedLayerMixin

PRUNING_LAYERS = (MaskedLayerMixin, BoundedBatchNormalization, ChannelGate)
INPUT_GATE_SUFFIX = "_input_mask"
# Mask-target kind of attention heads: the `head_mask` of a
# `MaskedMultiHeadAttention`.
HEADS_TARGET = "heads"


def is_head_member(member):
    """Whether `member` is the heads of an attention layer (whole heads)."""
    return member.role == INTERNAL and member.input_index == HEADS


def check_not_pruned(model):
    """Raises if `model` is already under pruning (or was not stripped)."""
    from keras_neuronprune.core.pruned_model import PrunedModel

    if isinstance(model, PrunedModel):
        raise ValueError(
            "`model` is already a PrunedModel. Call "
            "`keras_neuronprune.strip_pruning(model)` first, then prune the "
            f"stripped model. Received: model={model.name!r}"
        )
    for path, layer in iter_layers(kg.as_functional(model), graph=True):
        if isinstance(layer, BoundedBatchNormalization) and bool(
            (layer.channel_mask.numpy() == 1).all()
        ):
            # A model built with bounded BatchNorm (RNI's setting from
            # scratch) is not under pruning: its importances are kept.
            continue
        if isinstance(layer, PRUNING_LAYERS):
            raise ValueError(
                "`model` already contains pruning layers (layer "
                f"{path!r} is a {type(layer).__name__}). Strip it with "
                "`keras_neuronprune.strip_pruning` before pruning again. "
                f"Received: model={model.name!r}"
            )


class SurgeryPlan:
    """What to change in each layer of the clone.

    Attributes:
        swap: dict path -> "masked" or "bounded".
        gate_after: dict path -> gate name (gate on the layer's output).
        gate_before: dict path -> {input index: gate name}.
    """

    def __init__(self):
        self.swap = {}
        self.gate_after = {}
        self.gate_before = {}


def make_plan(model, groups, bounded_bn, gates_after_bn):
    """Decides swaps and gates, and the mask targets of every group.

    Returns:
        `(plan, targets)`: targets is a dict group name -> list of
        `(layer path, "output" | "input", positions (size, r))`.
    """
    functional = kg.as_functional(model)
    layers = dict(iter_operations(functional))
    used = {path.rsplit("/", 1)[-1] for path in layers}
    plan = SurgeryPlan()

    def unique(name):
        while name in used:
            name += "_"
        used.add(name)
        return name

    def gate_path(path, name):
        prefix = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        return prefix + name

    # Swap in masked layers only where a mask is needed: a consumer's
    # input mask is what makes a masked channel a removed one. Producers and
    # BatchNormalization keep their fast Keras implementation (an output
    # mask costs a pass over the activations) unless they are swapped
    # anyway, or the criterion reads them (RNI's bounded scales).
    for group in groups:
        for m in group.members:
            layer = layers[m.layer]
            masked = masked_class_for(layer)
            if bounded_bn and type(layer) is keras.layers.BatchNormalization:
                plan.swap[m.layer] = "bounded"
            elif (
                m.role == "input"
                and m.kind == "consumer"
                and masked is not None
                and masked.has_input_mask
            ):
                plan.swap.setdefault(m.layer, "masked")
    # Attention heads have no tensor: the head mask of the masked layer is
    # the only place where they can be removed.
    for group in groups:
        for m in group.members:
            if is_head_member(m):
                plan.swap[m.layer] = "masked"
    for group in groups:
        has_consumer = any(
            m.role == "input" and m.kind == "consumer" for m in group.members
        )
        if not has_consumer:
            for m in group.members:
                if m.role == "output" and masked_class_for(layers[m.layer]):
                    plan.swap.setdefault(m.layer, "masked")
    if gates_after_bn:
        for group in groups:
            outs = [m for m in group.members if m.role == "output"]
            bns = [
                m
                for m in outs
                if isinstance(layers[m.layer], keras.layers.BatchNormalization)
            ]
            for m in bns or [m for m in outs if m.kind == "producer"]:
                if m.layer not in plan.gate_after:
                    name = m.layer.rsplit("/", 1)[-1] + GATE_SUFFIX
                    plan.gate_after[m.layer] = unique(name)

    targets = {}
    for group in groups:
        items = []
        for m in group.members:
            layer = layers[m.layer]
            swap = plan.swap.get(m.layer)
            if is_head_member(m):
                items.append((m.layer, HEADS_TARGET, m.channels))
            elif m.role == "output":
                if swap is not None:
                    items.append((m.layer, "output", m.channels))
                if m.layer in plan.gate_after:
                    gate = gate_path(m.layer, plan.gate_after[m.layer])
                    items.append((gate, "output", m.channels))
            elif m.kind == "consumer":
                masked = masked_class_for(layer)
                if swap == "masked" and masked.has_input_mask:
                    items.append((m.layer, "input", m.channels))
                else:
                    gates = plan.gate_before.setdefault(m.layer, {})
                    if m.input_index not in gates:
                        base = m.layer.rsplit("/", 1)[-1]
                        gates[m.input_index] = unique(
                            f"{base}{INPUT_GATE_SUFFIX}{m.input_index}"
                        )
                    gate = gate_path(m.layer, gates[m.input_index])
                    items.append((gate, "output", m.channels))
        if not items:
            raise ValueError(
                f"Channel group {group.name!r} has no layer that can be "
                "masked; add it to `ignored_layers`."
            )
        targets[group.name] = items
    return plan, targets


def _clean_config(config):
    """Drops regularisers that belong to this library from a layer config."""
    config = dict(config)
    for key, value in list(config.items()):
        if key.endswith("_regularizer") and isinstance(value, dict):
            if str(value.get("module", "")).startswith("keras_neuronprune") or (
                str(value.get("registered_name", "")).startswith(
                    "keras_neuronprune>"
                )
            ):
                config[key] = None
    return config


def _same_layer(layer, config):
    """A fresh copy of `layer` from `config`; a `Lambda` is reused as is.

    Rebuilding a Lambda would deserialise its Python function, which Keras'
    safe mode refuses; a Lambda holds no weights, so the clone can share
    the object (its channels are a barrier and never change).
    """
    if isinstance(layer, keras.layers.Lambda):
        return layer
    return layer.__class__.from_config(config)


def _clone(functional, clone_layer, plan, paths):
    """`clone_model` with gates from `plan`; returns (clone, gates)."""
    new_paths = {}
    gates = {}

    def get_gate(path, name, trainable):
        full = path.rsplit("/", 1)[0] + "/" + name if "/" in path else name
        if full not in gates:
            gates[full] = ChannelGate(gate_trainable=trainable, name=name)
        return gates[full]

    def clone_function(layer):
        path = paths.get(id(layer))
        new = clone_layer(path, layer)
        new_paths[id(new)] = path
        return new

    def call_function(layer, *args, **kwargs):
        path = new_paths.get(id(layer))
        before = plan.gate_before.get(path) if plan else None
        if before:
            flat = keras.tree.flatten((args, kwargs))
            tensor_positions = [
                i
                for i, t in enumerate(flat)
                if isinstance(t, keras.KerasTensor)
            ]
            for index, name in before.items():
                i = tensor_positions[index]
                flat[i] = get_gate(path, name, False)(flat[i])
            args, kwargs = keras.tree.pack_sequence_as((args, kwargs), flat)
        if isinstance(layer, ChannelGate) and plan is None:
            return args[0]
        outputs = layer(*args, **kwargs)
        if plan and path in plan.gate_after:
            gate = get_gate(path, plan.gate_after[path], False)
            outputs = gate(outputs)
        return outputs

    clone = clone_model(
        functional,
        clone_function,
        call_function=call_function,
        keep_input_names=True,
        plain=False,
    )
    return clone, gates


def build_masked_clone(model, plan, criterion, bn_gamma_mapping="relative"):
    """The functional training-time clone of `model` described by `plan`."""
    functional = kg.as_functional(model)
    layers = dict(iter_layers(functional, graph=True))
    paths = {id(layer): path for path, layer in layers.items()}

    def clone_layer(path, layer):
        swap = plan.swap.get(path)
        if swap == "bounded":
            # RNI's momentum (PyTorch's 0.1): the statistics must follow
            # the receding channels closely enough to be right at pruning.
            return BoundedBatchNormalization.from_batch_normalization(
                layer,
                gamma_mapping=bn_gamma_mapping,
                momentum=min(float(layer.momentum), 0.9),
            )
        if swap == "masked":
            return masked_class_for(layer).from_config(layer.get_config())
        return _same_layer(layer, layer.get_config())

    clone, _ = _clone(functional, clone_layer, plan, paths)
    for path, new in iter_layers(clone, graph=True):
        old = layers.get(path)
        if old is None or isinstance(new, keras.Model):
            continue
        if plan.swap.get(path) != "bounded" and old.weights:
            copy_weights(old, new)
    if criterion is not None:
        for path, new in iter_layers(clone, graph=True):
            if not isinstance(new, keras.Model):
                _attach_criterion_regularizer(new, criterion)
    return clone


def _attach_criterion_regularizer(layer, criterion):
    """Puts `criterion.regularizer_for(layer)` on the weight it penalises."""
    from keras_neuronprune.regularizers import attach_regularizer

    regularizer = criterion.regularizer_for(layer)
    if regularizer is None:
        return
    weight = None
    if hasattr(criterion, "regularized_weight"):
        weight = criterion.regularized_weight(layer)
    if weight is None:
        raise ValueError(
            f"Criterion {type(criterion).__name__} returned a regulariser for "
            f"layer {layer.name!r} but no `regularized_weight` to put it on."
        )
    attach_regularizer(layer, weight, regularizer)


def build_plain_clone(model):
    """The pruned model with standard Keras layers only (same channels)."""
    functional = kg.as_functional(model)
    layers = dict(iter_layers(functional, graph=True))
    paths = {id(layer): path for path, layer in layers.items()}

    def clone_layer(path, layer):
        if isinstance(layer, ChannelGate):
            return layer
        if isinstance(layer, BoundedBatchNormalization):
            return layer.to_batch_normalization()
        if isinstance(layer, MaskedLayerMixin):
            new = layer.parent_class.from_config(
                _clean_config(layer.get_config())
            )
            new.build_from_config(layer.get_build_config())
            new.set_weights(layer.stripped_weights())
            return new
        return _same_layer(layer, _clean_config(layer.get_config()))

    clone, _ = _clone(functional, clone_layer, None, paths)
    from keras_neuronprune.core.pruned_model import PrunedModel

    if isinstance(clone, PrunedModel):
        # `clone_model` rebuilds functional subclasses with their own
        # class; the stripped model must be a plain functional model
        # (no pruning step, no controller), even when nothing was pruned.
        # `input`/`output` keep the user's structure (one tensor, a list or
        # a dict), so calling the stripped model warns about nothing.
        clone = keras.Model(clone.input, clone.output, name=clone.name)
    for path, new in iter_layers(clone, graph=True):
        old = layers.get(path)
        if (
            old is None
            or isinstance(new, keras.Model)
            or isinstance(old, PRUNING_LAYERS)
        ):
            continue
        if old.weights:
            new.set_weights(old.get_weights())
    return clone


def positions_removed(positions, kept):
    """Flat mask positions of the removed group channels."""
    return np.asarray(positions)[~np.asarray(kept, bool)].reshape(-1)


def strip_structured(model, check=True):
    """The final plain model of a `StructuredPruningController` model.

    `build_plain_clone`, then `thin_model` cuts the masked channels out;
    with `check`, the result is compared with `model` on random inputs
    when every thinned group is exact.
    """
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
