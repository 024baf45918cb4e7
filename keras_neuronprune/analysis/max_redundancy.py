"""Gradient-matrix estimate of each layer's maximum safe pruning ratio."""

import numpy as np

from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.calibration import num_samples
from keras_neuronprune.utils.features import call_site_map
from keras_neuronprune.utils.gradients import activations_and_gradients


def effective_rank(singular_values, energy):
    """Smallest `r` whose top-`r` squared singular values reach `energy`.

    Args:
        singular_values: non-negative array (any order).
        energy: fraction in (0, 1].

    Returns:
        int in [0, len(singular_values)] (0 for an all-zero spectrum).
    """
    s2 = np.sort(np.asarray(singular_values, "float64") ** 2)[::-1]
    total = s2.sum()
    if total <= 0:
        return 0
    cumulative = np.cumsum(s2) / total
    return int(np.searchsorted(cumulative, energy - 1e-12) + 1)


def max_redundancy(
    model,
    data,
    loss,
    groups=None,
    energy=0.99,
    columns_per_channel=4,
    max_samples=None,
    return_details=False,
):
    """Maximum safe pruning ratio of every prunable channel group.

    For each group the *gradient matrix* has one row per channel and one
    column per (sample, spatial position): the per-sample gradient of the
    loss w.r.t. the channel's activation at the outputs of the group's
    producers (columns of all producers are stacked, so a residual stream
    is one matrix). Its singular values say in how many independent
    directions the loss responds to the group's channels; the number of
    effective channels is the effective rank `r` (the fewest singular
    values holding `energy` of the squared spectrum), and the maximum
    redundancy is `1 - r / size`: pruning more than that must remove a
    direction the loss depends on. Use the result as an upper bound per
    group (e.g. `pruning_ratio_dict` of `prune_structured`), then choose
    filters with any criterion, which is the paper's hierarchical scheme.

    Documented choices (the paper's formulas are not public): the gradient
    is taken w.r.t. the channel activations rather than the filter
    weights (the weight gradient of a sample is this gradient times the
    input patches, so its row space cannot be richer), the per-sample
    gradients are the batch-mean gradients times the batch size (exact in
    inference mode), and the rank threshold is an energy fraction.

    Args:
        model: trained functional or Sequential model.
        data: iterable of `(x, y)` batches.
        loss: Keras loss name, instance or callable.
        groups: channel groups (default: `channel_groups(model)`); only
            prunable groups get a ratio.
        energy: fraction of the squared singular values kept, in (0, 1].
        columns_per_channel: the matrix must have at least this many
            columns (samples x positions) per channel, otherwise the rank
            estimate is capped by the data and a ValueError says how many
            samples are needed.
        max_samples: use at most this many samples.
        return_details: also return, per group, the effective rank and the
            singular values.

    Returns:
        dict group name -> ratio in [0, 1); with `return_details`, a tuple
        `(ratios, details)`.

    Raises:
        ValueError: bad `energy`, missing `loss` or `data`, or too few
            samples for a group.

    Example:
        >>> ratios = max_redundancy(
        ...     model, data, "sparse_categorical_crossentropy")
        >>> pruned = prune_structured(model, "l1", pruning_ratio_dict={
        ...     name: 0.8 * r for name, r in ratios.items()})

    Reference:
        Zhou et al., "Neural Network Compression via Effective Filter
        Analysis and Hierarchical Pruning", 2022,
        https://arxiv.org/abs/2206.03596
    """
    if not 0 < energy <= 1:
        raise ValueError(
            f"`energy` must be in (0, 1]. Received: energy={energy}"
        )
    if loss is None:
        raise ValueError(
            "`loss` is required to compute gradients. Received: loss=None"
        )
    if groups is None:
        from keras_neuronprune.graph import channel_groups

        groups = channel_groups(model)
    batches = calibration_batches(
        data,
        model,
        "max_redundancy",
        max_samples=max_samples,
        needs_targets=True,
    )
    _, sites = call_site_map(model)
    plan, layer_names = {}, []
    for group in groups:
        if not group.prunable:
            continue
        entries = []
        for m in group.producers:
            if m.role != "output" or m.layer not in sites:
                continue
            entries.append(
                (m.layer, np.asarray(m.channels).reshape(group.size, -1))
            )
            if m.layer not in layer_names:
                layer_names.append(m.layer)
        if entries:
            plan[group.name] = entries
    if not layer_names:
        return ({}, {}) if return_details else {}
    grams = {name: 0.0 for name in plan}
    columns = {name: 0 for name in plan}
    for x, y in batches:
        _, grads = activations_and_gradients(model, layer_names, x, y, loss)
        n = num_samples([(x, y)])
        for name, entries in plan.items():
            for layer, positions in entries:
                g = np.asarray(grads[layer], "float64") * n
                flat = g.reshape(-1, g.shape[-1])
                rows = flat[:, positions].sum(axis=2)  # (N*T, size)
                grams[name] = grams[name] + rows.T @ rows
                columns[name] += rows.shape[0]
    ratios, details = {}, {}
    total = num_samples(batches)
    short = {}
    for group in groups:
        needed = columns_per_channel * group.size
        if group.name in plan and columns[group.name] < needed:
            per_sample = columns[group.name] / total
            short[group.name] = int(np.ceil(needed / per_sample))
    if short:
        worst = max(short, key=short.get)
        raise ValueError(
            f"max_redundancy needs at least {short[worst]} samples for a "
            f"stable rank estimate (at least {columns_per_channel} gradient "
            f"columns per channel; group {worst!r} is the most demanding); "
            f"`data` yielded {total}. Groups short of data: {sorted(short)}"
        )
    for group in groups:
        if group.name not in plan:
            continue
        gram = grams[group.name]
        if not np.all(np.isfinite(gram)):
            raise ValueError(
                f"Non-finite gradients for channel group {group.name!r}; "
                "check the model's weights and the data."
            )
        singular = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))[::-1]
        rank = max(effective_rank(singular, energy), 1)
        ratios[group.name] = 1.0 - rank / group.size
        details[group.name] = {"rank": rank, "singular_values": singular}
    if return_details:
        return ratios, details
    return ratios
