"""`prune_structured`: wrap a model for channel pruning during training."""

import warnings

import keras

from keras_neuronprune.graph import _keras_graph as kg
from keras_neuronprune.pruning import _latency_target
from keras_neuronprune.pruning import _surgery
from keras_neuronprune.pruning._cost_estimate import layer_cost_table
from keras_neuronprune.pruning._flops_target import check_flops_reachable
from keras_neuronprune.pruning.structured_pruning_controller import (
    StructuredPruningController,
)
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int

# Criteria whose importances are trained in before pruning (default
# schedule: prune halfway through the first `fit`).
_TRAINED_IN = ("rni",)


def prune_structured(
    model,
    criterion="rni",
    pruning_ratio=None,
    flops_pruning_ratio=None,
    pruning_ratio_dict=None,
    ignored_layers=None,
    min_channels=None,
    round_to=1,
    max_pruning_ratio=1.0,
    allow_inexact=False,
    schedule=None,
    global_pruning=None,
    data=None,
    loss=None,
    importance_momentum=0.0,
    bn_gamma_mapping="relative",
    input_shape=None,
    target_latency=None,
    latency_table=None,
    head_pruning_ratio=None,
    **kwargs,
):
    """Wraps `model` for training-time channel (structured) pruning.

    Finds the model's channel groups (`keras_neuronprune.channel_groups`),
    clones the model (the user's model is never modified) with masked
    layers in place of the consumers of prunable groups (for `"rni"`, every
    BatchNormalization of a prunable group becomes a
    `BoundedBatchNormalization` that keeps its statistics; gradient criteria
    get a `ChannelGate` after each BatchNormalization), attaches the
    criterion's regularisers, and returns a `PrunedModel` whose
    `StructuredPruningController` prunes at the steps the schedule says.
    Train it with `keras_neuronprune.callbacks.UpdatePruning()`, then call
    `keras_neuronprune.strip_pruning` to get the physically thinner model.

    Pruning ratios count channels: `pruning_ratio=0.5` removes half of the
    channels of every prunable group (or, with `global_pruning`, half of all
    prunable channels, ranked across groups). Each group keeps at least
    `min_channels` channels and `(1 - max_pruning_ratio)` of its channels,
    keeps a multiple of `round_to` (and the same count in every conv-group
    of a grouped convolution) unless it keeps everything.

    Attention heads of `keras.layers.MultiHeadAttention` are channel
    groups too (`"<layer>/heads"`, one channel per head): the layer becomes
    a `MaskedMultiHeadAttention`, the criterion scores whole heads (`"l1"`,
    `"l2"`: the norms of each head's query, key and value weights;
    `"random"`), and a removed head is masked out of the value projection,
    which is exactly what removing it computes; `strip_pruning` then
    lowers `num_heads`. Criteria that read BatchNormalization or gates
    (`"rni"`, `"bn_scale"`, `"taylor"`...) cannot measure heads: those
    keep all their heads, with a warning. `head_pruning_ratio` sets the
    heads' ratio apart from the channels'.

    Args:
        model: a functional or Sequential Keras model (not already pruned).
        criterion: a criterion name (`keras_neuronprune.criteria.get`) or a
            `Criterion` instance.
        pruning_ratio: fraction of channels to remove, in [0, 1).
        flops_pruning_ratio: instead of `pruning_ratio`, the fraction of
            the original FLOPs to remove, in [0, 1) (0.5: 2x fewer FLOPs);
            the ratio is searched so the stripped model lands within 1% of
            `1 - flops_pruning_ratio` of the FLOPs.
        pruning_ratio_dict: dict layer or group name -> ratio for these
            groups (a layer name means the group of its output channels).
        ignored_layers: layer names (or layers) or group names whose output
            channels are never pruned.
        min_channels: minimum channels kept per group (None: 1 for every
            criterion, so one target builds one architecture; the RNI
            paper uses 3).
        round_to: kept counts are multiples of this (e.g. 8 for TFLite GPU
            and XNNPACK).
        max_pruning_ratio: at most this fraction of a group is removed.
        allow_inexact: also prune groups normalised across channels
            (LayerNormalization...), whose other channels then change.
        schedule: when and how much to prune: a
            `keras_neuronprune.schedules` object, a name, or any callable
            `schedule(step) -> (should_prune, ratio)` (tfmot's signature).
            None prunes once: for `"rni"` halfway through the first `fit`
            (`OneShot(step=None, fraction=0.5)`: the regulariser trains
            the importances in, pruning removes the receded channels, the
            second half fine-tunes without the regulariser), for other
            criteria before the first training step (`OneShot(step=0)`).
            To prune now, outside `fit`, call `pruned.controller.prune(
            pruned)`.
        global_pruning: rank channels across groups instead of within each
            group. None (the default) ranks per group for every criterion:
            the same target then builds the same architecture whatever the
            criterion, and on the quality benchmark global ranking cost RNI
            and slimming 4 to 14 points after fine-tuning. The RNI, slimming,
            Taylor and BN-statistics papers rank globally: pass True.
        data: calibration batches (`(x, y)` iterable or `tf.data`) for
            criteria that need data.
        loss: loss for gradient criteria (None: the compiled loss).
        importance_momentum: EMA factor smoothing scores across pruning
            steps (Taylor 2019 uses 0.9 with iterative schedules).
        bn_gamma_mapping: how `"rni"` maps trained BN scales into the
            bounded scale (`BoundedBatchNormalization.
            from_batch_normalization`): "relative", "clip" or "constant".
        input_shape: input shape without the batch dimension (a list of
            them for several inputs) at which FLOPs are counted, for models
            with undefined dimensions (keras-hub's `image_shape=(None, None,
            3)`, text models); needed with `flops_pruning_ratio` and by the
            FLOP reports of such models.
        target_latency: instead of `pruning_ratio` or `flops_pruning_ratio`,
            the fraction of the dense model's latency to *keep*, in (0, 1]
            (0.5: 2x faster, 0.33: 3x faster), as predicted by
            `latency_table`. Per-group widths are chosen by a greedy
            knapsack (HALP) that keeps the most criterion importance under
            that budget: with per-group ranking (the default) it maximises
            the sum over groups of the log of each group's kept importance
            share (no group is emptied to speed up the rest), with
            `global_pruning=True` the raw kept importance. Widths that the
            table says cost nothing (inside the runtime's channel tile)
            are kept. Bound the per-group cut with `max_pruning_ratio`.
        latency_table: the latency table of this model on the deployment
            runtime (`python -m tflite_bench latency-table`): a JSON path,
            its dict or a `tflite_bench.latency_table.LatencyTable`. A
            table built for another model or input size is refused.
        head_pruning_ratio: fraction of the heads to remove in every
            attention-head group, in [0, 1), instead of `pruning_ratio`
            (Torch-Pruning's `head_pruning_ratio`; 0 keeps every head).
            `pruning_ratio_dict` entries of a head group win over it.
        **kwargs: deprecated spellings, accepted for one release with a
            `DeprecationWarning`: `target_flops` (the fraction of FLOPs to
            keep, in (0, 1]; read as `flops_pruning_ratio = 1 -
            target_flops`).

    Returns:
        A `keras_neuronprune.core.PrunedModel`.

    Raises:
        ValueError: bad arguments (naming the argument and the value), an
            unknown criterion, a criterion needing data without `data`, an
            already pruned model, an unreachable FLOPs or latency target
            (the message gives the smallest reachable latency), a latency
            table built for another model, both a
            deprecated spelling and its replacement, or a model without
            prunable channels.
        TypeError: an unknown keyword argument.

    Example:
    ```python
    pruned = keras_neuronprune.prune_structured(
        model, criterion="rni", pruning_ratio=0.5,
        schedule=keras_neuronprune.schedules.OneShot(step=200))
    pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=3,
               callbacks=[keras_neuronprune.callbacks.UpdatePruning()])
    final = keras_neuronprune.strip_pruning(pruned)
    ```

    Reference:
        Suteu & Guo, "Receding Neuron Importances for Structured Pruning",
        arXiv:2204.06404; Fang et al., "DepGraph: Towards Any Structural
        Pruning", arXiv:2301.12900.
    """

    functional = _check_model(model)
    criterion_name, criterion = _resolve_criterion(criterion)
    from keras_neuronprune.utils.gradients import check_backend_support

    check_backend_support(criterion)
    flops = _flops_target(pruning_ratio, flops_pruning_ratio, kwargs)
    reject_unknown(kwargs, "prune_structured")
    latency = _latency_target_of(
        target_latency, latency_table, pruning_ratio, flops
    )
    _check_targets(
        pruning_ratio, flops or latency, pruning_ratio_dict, head_pruning_ratio
    )
    if min_channels is None:
        min_channels = 1
    global_pruning = _check_options(
        criterion_name,
        criterion,
        min_channels=min_channels,
        round_to=round_to,
        max_pruning_ratio=max_pruning_ratio,
        importance_momentum=importance_momentum,
        global_pruning=global_pruning,
        data=data,
    )

    groups, ratio_dict = _groups_and_ratios(
        model,
        functional,
        allow_inexact,
        ignored_layers,
        pruning_ratio_dict,
        head_pruning_ratio,
    )

    needs = _criterion_needs(criterion, criterion_name)
    plan, targets = _surgery.make_plan(
        model,
        groups,
        bounded_bn="bounded_bn" in needs,
        gates_after_bn="gates" in needs,
    )

    cost = _count_cost(model, input_shape)
    layer_costs = layer_cost_table(model, cost)
    if flops is not None:
        check_flops_reachable(
            groups, layer_costs, cost, flops.keep, ratio_dict,
            min_channels, max_pruning_ratio, flops.name, flops.value,
        )  # fmt: skip
    if latency is not None:
        latency = _check_latency_table(
            latency, model, input_shape, groups, ratio_dict,
            min_channels, max_pruning_ratio, round_to,
        )  # fmt: skip

    schedule = _bind_schedule(schedule, criterion_name, pruning_ratio, groups)

    clone = _surgery.build_masked_clone(
        model, plan, criterion, bn_gamma_mapping=bn_gamma_mapping
    )
    controller = StructuredPruningController(
        criterion=criterion,
        groups=groups,
        targets=targets,
        pruning_ratio=pruning_ratio,
        pruning_ratio_dict=ratio_dict,
        flops_pruning_ratio=None if flops is None else 1 - flops.keep,
        schedule=schedule,
        global_pruning=global_pruning,
        min_channels=min_channels,
        round_to=round_to,
        max_pruning_ratio=max_pruning_ratio,
        importance_momentum=importance_momentum,
        layer_costs=layer_costs,
        base_params=cost.params,
        base_flops=cost.flops,
        allow_inexact=allow_inexact,
        data=data,
        loss=loss,
        input_shape=input_shape,
        target_latency=None if latency is None else latency[0],
        latency_table=None if latency is None else latency[1],
    )
    from keras_neuronprune.core.pruned_model import PrunedModel

    pruned = PrunedModel(
        clone.input, clone.output, name=model.name, controller=controller
    )
    _warn_unsupported(
        controller.unsupported_groups(pruned), groups, criterion_name
    )
    return pruned


def _check_model(model):
    """The functional form of `model`; refuses what cannot be pruned."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a functional or Sequential keras.Model. "
            f"Received: model={model!r}"
        )
    functional = kg.as_functional(model)
    _surgery.check_not_pruned(model)
    return functional


def _groups_and_ratios(
    model,
    functional,
    allow_inexact,
    ignored_layers,
    pruning_ratio_dict,
    head_pruning_ratio,
):
    """The prunable groups and the per-group ratios; refuses a model
    with no prunable group, naming why."""
    from keras_neuronprune.graph import channel_groups

    all_groups = channel_groups(model, allow_inexact=allow_inexact)
    layer_paths = dict(_surgery.iter_layers(functional, graph=True))
    groups = _prunable_groups(all_groups, ignored_layers, layer_paths)
    ratio_dict = _resolve_ratio_dict(
        pruning_ratio_dict, all_groups, groups, layer_paths
    )
    ratio_dict = _with_head_ratio(ratio_dict, groups, head_pruning_ratio)
    if not groups:
        reasons = sorted({g.reason for g in all_groups if g.reason})[:5]
        raise ValueError(
            f"Model {model.name!r} has no prunable channel group (after "
            f"`ignored_layers`). Reasons: {reasons}"
        )
    return groups, ratio_dict


def _warn_unsupported(unsupported, groups, criterion_name):
    """Warns about the groups the criterion cannot measure."""
    if not unsupported:
        return
    heads = sorted(set(_head_groups(groups)) & unsupported)
    note = (
        f" Attention heads {heads} are measured by 'l1', 'l2' and "
        "'random' only."
        if heads
        else ""
    )
    warnings.warn(
        f"Criterion {criterion_name!r} cannot measure channel group(s) "
        f"{sorted(unsupported)}; they keep all their channels.{note} "
        "Add them to `ignored_layers` to silence this warning.",
        stacklevel=3,
    )


class _FlopsTarget:
    """A FLOPs target as the user spelled it, and the fraction it keeps."""

    def __init__(self, name, value, keep):
        self.name = name
        self.value = value
        self.keep = keep


def _flops_target(pruning_ratio, flops_pruning_ratio, kwargs):
    """Reads `flops_pruning_ratio` or the deprecated `target_flops`.

    Returns None without a FLOPs target, else a `_FlopsTarget`; checks the
    value under the name the user passed, so messages name that argument.
    """
    if "target_flops" not in kwargs:
        if flops_pruning_ratio is None:
            return None
        _check_not_both(
            pruning_ratio, "flops_pruning_ratio", flops_pruning_ratio
        )
        value = check_fraction(
            flops_pruning_ratio,
            "flops_pruning_ratio",
            detail="(the fraction of FLOPs to remove) ",
        )
        return _FlopsTarget(
            "flops_pruning_ratio", flops_pruning_ratio, 1 - value
        )
    target_flops = pop_renamed(
        kwargs,
        "target_flops",
        "flops_pruning_ratio",
        flops_pruning_ratio,
        where="prune_structured",
        stacklevel=4,
    )
    if target_flops is None:
        return None
    _check_not_both(pruning_ratio, "target_flops", target_flops)
    check_fraction(
        target_flops,
        "target_flops",
        include_zero=False,
        include_one=True,
        detail="(the fraction of FLOPs to keep) ",
    )
    return _FlopsTarget("target_flops", target_flops, target_flops)


def _latency_target_of(target_latency, latency_table, pruning_ratio, flops):
    """Checks `target_latency`; returns None or (target, table dict)."""
    if target_latency is None:
        if latency_table is not None:
            raise ValueError(
                "`latency_table` is only used with `target_latency`. "
                "Received: target_latency=None"
            )
        return None
    _check_not_both(pruning_ratio, "target_latency", target_latency)
    if flops is not None:
        raise ValueError(
            f"Pass either `{flops.name}` or `target_latency`, not both. "
            f"Received: {flops.name}={flops.value!r}, "
            f"target_latency={target_latency!r}"
        )
    value = _latency_target.check_latency_target(target_latency, latency_table)
    return value, _latency_target.load_table(latency_table)


def _check_latency_table(
    latency,
    model,
    input_shape,
    groups,
    ratio_dict,
    min_channels,
    max_ratio,
    round_to,
):
    """Refuses a table of another model; fails early when unreachable."""
    from keras_neuronprune.core.selection import ChannelSelector

    target, table = latency
    fingerprint = _latency_target.model_fingerprint(model, input_shape)
    _latency_target.check_table(table, fingerprint=fingerprint)
    selector = ChannelSelector(
        min_channels=min_channels,
        max_pruning_ratio=max_ratio,
        round_to=round_to,
    )
    plans = selector.plans(groups)
    fixed = selector.fixed_counts(plans, ratio_dict)
    latency_model = _latency_target.LatencyModel(table, groups)
    smallest = _latency_target.smallest_share(plans, latency_model, fixed)
    if smallest > target + 1e-9:
        raise ValueError(
            _latency_target.unreachable_message(
                target, table, smallest, min_channels, max_ratio
            )
        )
    return latency


def _check_not_both(pruning_ratio, name, value):
    if pruning_ratio is not None:
        raise ValueError(
            f"Pass either `pruning_ratio` or `{name}`, not both. "
            f"Received: pruning_ratio={pruning_ratio!r}, {name}={value!r}"
        )


def _check_options(criterion_name, criterion, **options):
    """Checks the per-group limits and options; returns `global_pruning`."""
    note = " (0 would let a target empty a group)"
    check_int(options["min_channels"], "min_channels", 1, note=note)
    check_int(options["round_to"], "round_to", 1, note=note)
    check_fraction(
        options["max_pruning_ratio"],
        "max_pruning_ratio",
        include_zero=False,
        include_one=True,
    )
    check_fraction(options["importance_momentum"], "importance_momentum")
    global_pruning = options["global_pruning"]
    if global_pruning is None:
        global_pruning = False
    if not isinstance(global_pruning, bool):
        raise ValueError(
            "`global_pruning` must be True, False or None. "
            f"Received: global_pruning={global_pruning!r}"
        )
    if getattr(criterion, "requires_data", False) and options["data"] is None:
        raise ValueError(
            f"Criterion {criterion_name!r} needs calibration data: pass "
            "`data=` (an iterable of (x, y) batches or a tf.data.Dataset). "
            "Received: data=None"
        )
    return global_pruning


def _prunable_groups(all_groups, ignored_layers, layer_paths):
    """The prunable groups left after `ignored_layers` and attention dims.

    Head groups (`"<attention layer>/heads"`) are pruned through the head
    mask of the layer's masked class (`MaskedMultiHeadAttention`); head
    dimensions (`prune="head_dim"`) and heads of attention layers without
    a masked class are left whole, with a warning.
    """
    ignored = _resolve_ignored(ignored_layers, layer_paths, all_groups)
    whole = {}
    for g in all_groups:
        if not g.prunable or g.name in ignored:
            continue
        internal = [m for m in g.members if m.role == "internal"]
        if not internal:
            continue
        reason = _untrainable_heads(internal, layer_paths)
        if reason:
            whole[g.name] = reason
    if whole:
        details = "; ".join(f"{n!r}: {r}" for n, r in sorted(whole.items()))
        warnings.warn(
            f"Attention group(s) {sorted(whole)} are not pruned during "
            f"training and keep all their channels ({details}). Thin them "
            "one-shot with `keras_neuronprune.thin_model`, or add them to "
            "`ignored_layers` to silence this warning.",
            stacklevel=3,
        )
    return [
        g
        for g in all_groups
        if g.prunable
        and g.name not in ignored
        and g.name not in whole
        and not any(
            m.role == "output" and m.layer in ignored for m in g.members
        )
    ]


def _untrainable_heads(internal, layer_paths):
    """Why internal attention members cannot be masked, or None."""
    from keras_neuronprune.layers import masked_class_for

    for m in internal:
        if not _surgery.is_head_member(m):
            return (
                "head dimensions (prune='head_dim') have no training-time "
                "mask; prune whole heads (the default) instead"
            )
        masked = masked_class_for(layer_paths.get(m.layer))
        if masked is None or not hasattr(masked, "set_head_mask"):
            layer = layer_paths.get(m.layer)
            return (
                f"layer {m.layer!r} ({type(layer).__name__}) has no masked "
                "class with a head mask"
            )
    return None


def _head_groups(groups):
    """Names of the attention-head groups among `groups`."""
    return [
        g.name
        for g in groups
        if any(_surgery.is_head_member(m) for m in g.members)
    ]


def _bind_schedule(schedule, criterion_name, pruning_ratio, groups):
    """Resolves `schedule` (None: the default) and binds its final ratio.

    The default prunes once. Criteria that train their importances in (RNI)
    regularise for the first half of `fit`, prune once, then fine-tune
    without the penalty; the others prune before the first step.
    """
    from keras_neuronprune.schedules import OneShot
    from keras_neuronprune.schedules import get as get_schedule

    schedule = get_schedule(schedule)
    if schedule is None:
        schedule = (
            OneShot(step=None, fraction=0.5)
            if criterion_name in _TRAINED_IN
            else OneShot(step=0)
        )
    if hasattr(schedule, "bind"):
        final_ratio = pruning_ratio if pruning_ratio is not None else 1.0
        schedule = schedule.bind(final_ratio, sum(g.size for g in groups))
    return schedule


def _count_cost(model, input_shape):
    """`count_cost` whose shape errors name `prune_structured`'s argument."""
    from keras_neuronprune.cost import count_cost

    try:
        return count_cost(model, input_shape=input_shape)
    except ValueError as e:
        dynamic = [
            tuple(x.shape)
            for x in model.inputs
            if any(d is None for d in tuple(x.shape)[1:])
        ]
        if input_shape is None and dynamic:
            raise ValueError(
                f"Model {model.name!r} has inputs of undefined size "
                f"{dynamic}: pass the size to count its FLOPs at, without "
                "the batch dimension, e.g. prune_structured(model, ..., "
                "input_shape=(224, 224, 3)). Received: input_shape=None"
            ) from e
        if "input_shape" in str(e) and "Received: input_shape" in str(e):
            raise ValueError(
                str(e).replace(
                    "`input_shape`", "`input_shape` of prune_structured"
                )
            ) from e
        raise


def _resolve_criterion(criterion):
    from keras_neuronprune import criteria
    from keras_neuronprune.criteria.base_criterion import Criterion

    if isinstance(criterion, Criterion):
        name = getattr(criterion, "alias", None) or type(criterion).__name__
        return str(name).lower(), criterion
    if not isinstance(criterion, str):
        raise ValueError(
            "`criterion` must be a criterion name or a Criterion instance. "
            f"Received: criterion={criterion!r}"
        )
    try:
        resolved = criteria.get(criterion)
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"Unknown `criterion`. Received: criterion={criterion!r}; known: "
            f"{sorted(criteria.all_criteria())}"
        ) from None
    if resolved is None:
        raise ValueError(
            f"Unknown `criterion`. Received: criterion={criterion!r}"
        )
    return str(getattr(resolved, "alias", None) or criterion).lower(), resolved


def _criterion_needs(criterion, name):
    """What the criterion needs in the model: bounded BNs, gates."""
    from keras_neuronprune.criteria._taylor_base import GateTaylorBase
    from keras_neuronprune.criteria.rni import RNI

    needs = set()
    if isinstance(criterion, RNI) or name == "rni":
        needs.add("bounded_bn")
    if isinstance(criterion, GateTaylorBase):
        needs.add("gates")
    return needs


def _with_head_ratio(ratio_dict, groups, head_pruning_ratio):
    """`ratio_dict` plus `head_pruning_ratio` for the other head groups."""
    if head_pruning_ratio is None:
        return ratio_dict
    heads = _head_groups(groups)
    if not heads:
        raise ValueError(
            "`head_pruning_ratio` is given, but the model has no prunable "
            "attention-head group. Received: "
            f"head_pruning_ratio={head_pruning_ratio!r}"
        )
    resolved = {name: float(head_pruning_ratio) for name in heads}
    resolved.update(ratio_dict)
    return resolved


def _check_targets(pruning_ratio, flops, pruning_ratio_dict, head_ratio=None):
    if head_ratio is not None:
        check_fraction(head_ratio, "head_pruning_ratio")
    if (
        pruning_ratio is None
        and flops is None
        and not (pruning_ratio_dict)
        and head_ratio is None
    ):
        raise ValueError(
            "Pass a pruning target: `pruning_ratio`, `flops_pruning_ratio`, "
            "`target_latency`, `pruning_ratio_dict` or `head_pruning_ratio`. "
            "Received: pruning_ratio=None, flops_pruning_ratio=None, "
            "pruning_ratio_dict=None, head_pruning_ratio=None"
        )
    if pruning_ratio is not None:
        check_fraction(pruning_ratio, "pruning_ratio")
    if pruning_ratio_dict is not None and not isinstance(
        pruning_ratio_dict, dict
    ):
        raise ValueError(
            "`pruning_ratio_dict` must be a dict of layer or group name -> "
            f"ratio. Received: pruning_ratio_dict={pruning_ratio_dict!r}"
        )
    for key, value in (pruning_ratio_dict or {}).items():
        check_fraction(value, f"pruning_ratio_dict[{key!r}]")


def _name_of(item):
    return item.name if isinstance(item, keras.layers.Layer) else item


def _resolve_ignored(ignored_layers, layer_paths, groups):
    if ignored_layers is None:
        return set()
    if isinstance(ignored_layers, (str, keras.layers.Layer)):
        ignored_layers = [ignored_layers]
    names = set()
    group_names = {g.name for g in groups}
    by_short = {}
    for path in layer_paths:
        by_short.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    for item in ignored_layers:
        name = _name_of(item)
        if not isinstance(name, str):
            raise ValueError(
                "`ignored_layers` must hold layer names, layers or group "
                f"names. Received: ignored_layers={ignored_layers!r}"
            )
        if name in layer_paths or name in group_names:
            names.add(name)
        elif name in by_short:
            names.update(by_short[name])
        else:
            raise ValueError(
                f"`ignored_layers` names a layer or group that is not in the "
                f"model. Received: ignored_layers entry {name!r}"
            )
    return names


def _resolve_ratio_dict(ratio_dict, all_groups, groups, layer_paths):
    """Maps layer / group names of `pruning_ratio_dict` to group names."""
    resolved = {}
    prunable = {g.name for g in groups}
    for key, ratio in (ratio_dict or {}).items():
        name = _name_of(key)
        matches = [g for g in all_groups if g.name == name]
        if not matches:
            outputs = [
                g
                for g in all_groups
                if any(
                    m.layer == name and m.role == "output" for m in g.members
                )
            ]
            producers = [
                g
                for g in outputs
                if any(
                    m.layer == name and m.kind == "producer" for m in g.members
                )
            ]
            matches = producers or outputs
        if not matches:
            known = name in layer_paths
            raise ValueError(
                f"`pruning_ratio_dict` key {name!r} is "
                + (
                    "a layer without output channels to prune."
                    if known
                    else "neither a layer nor a channel group of the model."
                )
                + f" Received: pruning_ratio_dict={ratio_dict!r}"
            )
        for group in matches:
            if group.name not in prunable:
                reason = group.reason or "it is in `ignored_layers`"
                raise ValueError(
                    f"`pruning_ratio_dict` key {name!r} names channel group "
                    f"{group.name!r}, which cannot be pruned: {reason}."
                )
            resolved[group.name] = float(ratio)
    return resolved
