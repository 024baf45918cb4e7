"""`thinet_prune`: ThiNet's layer-by-layer pruning with least squares."""

import keras
import numpy as np

from keras_neuronprune.core.selection import ChannelSelector
from keras_neuronprune.core.surgery import layer_by_name
from keras_neuronprune.criteria.thinet import consumer_grams
from keras_neuronprune.criteria.thinet import greedy_removal_order
from keras_neuronprune.criteria.thinet import least_squares_scales
from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


def thinet_prune(
    model,
    data,
    pruning_ratio=None,
    groups=None,
    fine_tune=None,
    samples_per_image=10,
    skip_residual=True,
    min_channels=1,
    rescale=True,
    seed=0,
    **kwargs,
):
    """Prunes a trained model layer by layer with ThiNet.

    For each selected channel group in graph order: sample the consumers'
    inputs on the current model, choose the channels to remove greedily
    (`greedy_removal_order`), remove them with `thin_model`, fold the
    least-squares scales of the kept channels into each consumer's kernel
    (`least_squares_scales`), then call `fine_tune` before the next group.

    Args:
        model: a trained functional or Sequential model (not modified).
        data: calibration data, an iterable of `(x, y)` batches (targets
            are only used by `fine_tune`).
        pruning_ratio: fraction of each group's channels to remove, in
            [0, 1) (`ratio=` is its deprecated spelling).
        groups: names of the groups to prune (default: every prunable
            group, minus residual streams when `skip_residual`).
        fine_tune: optional callable `fine_tune(model, group_name)` called
            after each group; it may train the model in place and return
            None, or return a replacement model.
        samples_per_image: output locations sampled per image.
        skip_residual: skip groups with several producers (the channels of
            a residual stream), as ThiNet does on ResNets.
        min_channels: keep at least this many channels per group.
        rescale: fold the least-squares scales into the consumers.
        seed: seed of the location sampling.

    Returns:
        `(new_model, report)`: the thinned model and a dict with one entry
        per pruned group (`size`, `kept`, `removed`, the relative
        reconstruction error of each consumer without and with the
        rescale) plus `params_before` / `params_after`.

    Raises:
        ValueError: for a bad `pruning_ratio`, unknown group names or bad
            data.

    Example:
        >>> thin, report = thinet_prune(model, data, pruning_ratio=0.5)

    Reference:
        Luo et al., "ThiNet", ICCV 2017, https://arxiv.org/abs/1707.06342
    """
    from keras_neuronprune.graph import channel_groups
    from keras_neuronprune.rewrite import thin_model

    pruning_ratio = pop_renamed(
        kwargs, "ratio", "pruning_ratio", pruning_ratio, where="thinet_prune"
    )
    reject_unknown(kwargs, "thinet_prune")
    check_fraction(pruning_ratio, "pruning_ratio")
    check_int(int(min_channels), "min_channels", 1)
    batches = calibration_batches(data, model, "thinet_prune", min_samples=1)
    names = _selected_groups(channel_groups(model), groups, skip_residual)
    # ThiNet's counts: half up, no conv-group balance.
    selector = ChannelSelector(
        min_channels=min_channels, rounding="half_up", partition="none"
    )
    current = model
    report = {"groups": [], "params_before": model.count_params()}
    for name in names:
        group = {g.name: g for g in channel_groups(current)}[name]
        plans = selector.plans([group])
        count = selector.ratio_counts(plans, None, {}, pruning_ratio)[name]
        if count >= group.size:
            continue
        entries = consumer_grams(
            current, [group], batches, samples_per_image, seed, False
        )[name]
        if not entries:
            raise ValueError(
                f"ThiNet cannot prune channel group {name!r}: no Conv/Dense "
                "consumer to reconstruct."
            )
        joint = sum(g / max(float(g.sum()), 1e-30) for _, g in entries)
        order, _ = greedy_removal_order(joint)
        # Later in the greedy removal order is better.
        ranks = np.empty(group.size)
        ranks[order] = np.arange(1, group.size + 1)
        keep = np.sort(plans[0].select(ranks, count))
        removed = np.sort(order[: group.size - count])
        errors, scales = _reconstruction(entries, keep, removed, rescale)
        current, _ = thin_model(current, {name: keep.tolist()})
        _fold_scales(current, name, scales)
        report["groups"].append(
            {
                "group": name,
                "size": group.size,
                "kept": keep.tolist(),
                "removed": removed.tolist(),
                "consumers": errors,
            }
        )
        if fine_tune is not None:
            replaced = fine_tune(current, name)
            if replaced is not None:
                current = replaced
    report["params_after"] = current.count_params()
    if current is model:
        current, _ = thin_model(model, {})
    return current, report


def _selected_groups(all_groups, groups, skip_residual):
    """Names of the groups `thinet_prune` prunes, checked."""
    if groups is None:
        return [
            g.name
            for g in all_groups
            if g.prunable and not (skip_residual and len(g.producers) > 1)
        ]
    by_name = {g.name: g for g in all_groups}
    names = list(groups)
    for name in names:
        if name not in by_name or not by_name[name].prunable:
            raise ValueError(
                "`groups` must name prunable channel groups. Received: "
                f"{name!r}"
            )
    return names


def _reconstruction(entries, keep, removed, rescale):
    """Per-consumer errors and least-squares scales of the kept channels.

    Returns:
        `(errors, scales)`: one report dict per consumer, and dict
        `(layer, input_index) -> scales (len(keep),)` when `rescale`.
    """
    errors, scales = [], {}
    for member, gram in entries:
        full = max(float(gram.sum()), 1e-30)
        plain = float(gram[np.ix_(removed, removed)].sum()) / full
        fitted = plain
        if rescale:
            w = least_squares_scales(gram, keep)
            g_kk = gram[np.ix_(keep, keep)]
            fitted = (
                full
                - 2.0 * float(w @ gram[keep].sum(axis=1))
                + float(w @ g_kk @ w)
            ) / full
            scales[(member.layer, member.input_index)] = w
        errors.append(
            {
                "consumer": member.layer,
                "error": plain,
                "error_rescaled": max(fitted, 0.0),
            }
        )
    return errors, scales


def _fold_scales(model, name, scales):
    """Multiplies each consumer's input weights by its kept channels' scale."""
    from keras_neuronprune.graph import channel_groups

    if not scales:
        return
    group = {g.name: g for g in channel_groups(model)}[name]
    for member in group.consumers:
        key = (member.layer, member.input_index)
        if key in scales and member.role == "input":
            positions = np.asarray(member.channels).reshape(group.size, -1)
            _scale_consumer_inputs(
                layer_by_name(model, member.layer),
                positions,
                scales.pop(key),
            )


def _scale_consumer_inputs(layer, positions, scales):
    kernel = np.array(layer.kernel.numpy())
    axis = 0 if isinstance(layer, keras.layers.Dense) else kernel.ndim - 2
    view = np.moveaxis(kernel, axis, 0)
    for k, pos in enumerate(positions):
        view[pos] *= scales[k]
    layer.kernel.assign(np.moveaxis(view, 0, axis))
