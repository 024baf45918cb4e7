"""Sensitivity analysis: prune one channel group at a time (Li et al.)."""

import numpy as np

from keras_neuronprune.analysis.sensitivity_report import SensitivityReport
from keras_neuronprune.core.selection import ChannelSelector
from keras_neuronprune.utils.calibration import calibration_batches

_DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _accuracy(model, batches):
    correct = total = 0
    for x, y in batches:
        pred = np.asarray(model.predict_on_batch(x))
        y = np.asarray(y)
        if pred.ndim == 1 or pred.shape[-1] == 1:
            guess = (pred.reshape(len(pred)) > 0.5).astype("int64")
            truth = y.reshape(len(y))
        else:
            guess = pred.argmax(axis=-1)
            truth = y.argmax(axis=-1) if y.ndim == pred.ndim else y
        correct += int(np.sum(guess.reshape(-1) == truth.reshape(-1)))
        total += guess.size
    return correct / max(total, 1)


def _l1_scores(model, group):
    """Li et al.'s filter L1 norms summed over the group's producers."""
    from keras_neuronprune.utils.structures import structure_slices

    scores = np.zeros(group.size)
    for s in structure_slices(model, group):
        if s.variable.name.split("/")[-1] in ("kernel", "pointwise_kernel"):
            scores += s.per_channel(np.abs(s.variable.numpy()))
    return scores


def _scores(model, criterion, groups, batches, loss, verbose):
    """Dict group name -> scores: Li et al.'s L1 norms or a criterion's."""
    if isinstance(criterion, str) and criterion == "l1":
        return {g.name: _l1_scores(model, g) for g in groups}
    from keras_neuronprune.criteria import get
    from keras_neuronprune.criteria.base_criterion import ScoringContext

    return get(criterion).score(
        ScoringContext(model, groups, batches, loss, verbose=verbose)
    )


def _progress_bar(total, verbose):
    if not verbose:
        return None
    import keras

    return keras.utils.Progbar(total, verbose=verbose, unit_name="model")


def sensitivity_analysis(
    model,
    data,
    ratios=_DEFAULT_RATIOS,
    groups=None,
    criterion="l1",
    loss=None,
    evaluate=None,
    metric_name="accuracy",
    min_channels=1,
    verbose=1,
):
    """Prunes each channel group alone over a range of ratios.

    For every selected group and ratio, the lowest-scoring channels of that
    group only are removed with `thin_model` (the model is not modified)
    and the result is evaluated without fine-tuning. Sensitive groups
    (steep curves) should get small ratios; `report.max_ratios(tolerance)`
    turns the curves into a per-group ratio dict.

    Args:
        model: trained functional or Sequential model.
        data: iterable of `(x, y)` batches to evaluate on (and to score
            with data-driven criteria).
        ratios: pruning ratios in [0, 1) to try.
        groups: names of groups to analyse (default: all prunable).
        criterion: "l1" (Li et al.'s filter L1 norm, the default), any
            name for `keras_neuronprune.criteria.get`, or a `Criterion`.
        loss: loss for gradient criteria.
        evaluate: `evaluate(model) -> float` replacing the built-in
            accuracy on `data` (argmax of the outputs vs integer or one-hot
            labels; threshold 0.5 for one output).
        metric_name: name shown in the table and plot.
        min_channels: channels every group keeps at least.
        verbose: 1 (default) shows a Keras progress bar over the pruned
            models evaluated (and over scoring); 0 is silent.

    Returns:
        A `SensitivityReport` (`.table()`, `.plot()`, `.max_ratios()`).

    Raises:
        ValueError: for ratios outside [0, 1) or unknown group names.

    Example:
        >>> report = sensitivity_analysis(model, val_batches)
        >>> print(report.table())
        >>> report.plot("sensitivity.png")

    Reference:
        Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017,
        https://arxiv.org/abs/1608.08710
    """
    from keras_neuronprune.graph import channel_groups
    from keras_neuronprune.rewrite import thin_model

    ratios = [float(r) for r in ratios]
    if not ratios or any(not 0 <= r < 1 for r in ratios):
        raise ValueError(
            f"`ratios` must lie in [0, 1). Received: ratios={ratios}"
        )
    batches = calibration_batches(data, model, "sensitivity_analysis")
    all_groups = channel_groups(model)
    prunable = {g.name: g for g in all_groups if g.prunable}
    names = list(prunable) if groups is None else list(groups)
    for name in names:
        if name not in prunable:
            raise ValueError(
                "`groups` must name prunable channel groups. Received: "
                f"{name!r} (prunable: {sorted(prunable)})"
            )
    if evaluate is None:

        def evaluate(candidate):
            return _accuracy(candidate, batches)

    selected = [prunable[n] for n in names]
    scores = _scores(model, criterion, selected, batches, loss, verbose)
    baseline = evaluate(model)
    # Li et al.'s counts: the removed share rounded half up, no conv-group
    # balance (see `ChannelSelector`).
    selector = ChannelSelector(
        min_channels=min_channels, rounding="half_up", partition="none"
    )
    results, kept = {}, {}
    bar = _progress_bar(len(names) * len(ratios), verbose)
    for name in names:
        plans = selector.plans([prunable[name]])
        values, counts = [], []
        for ratio in ratios:
            count = selector.ratio_counts(plans, scores, {}, ratio)
            keep = selector.keep_sets(plans, scores, count)[name]
            if count[name] == prunable[name].size:
                values.append(baseline)
            else:
                thin, _ = thin_model(model, {name: keep.tolist()})
                values.append(float(evaluate(thin)))
            counts.append(count[name])
            if bar is not None:
                bar.add(1)
        results[name] = values
        kept[name] = counts
    return SensitivityReport(baseline, ratios, results, kept, metric_name)
