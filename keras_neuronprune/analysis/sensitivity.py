"""Sensitivity analysis: prune one channel group at a time (Li et al.)."""

import numpy as np

from keras_neuronprune.analysis.sensitivity_report import SensitivityReport
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

    if isinstance(criterion, str) and criterion == "l1":
        scores = {n: _l1_scores(model, prunable[n]) for n in names}
    else:
        from keras_neuronprune.criteria import get
        from keras_neuronprune.criteria.base_criterion import ScoringContext

        scorer = get(criterion)
        selected = [prunable[n] for n in names]
        scores = scorer.score(
            ScoringContext(model, selected, batches, loss, verbose=verbose)
        )
    baseline = evaluate(model)
    results, kept = {}, {}
    bar = None
    if verbose:
        import keras

        bar = keras.utils.Progbar(
            len(names) * len(ratios), verbose=verbose, unit_name="model"
        )
    done = 0
    for name in names:
        size = prunable[name].size
        order = np.argsort(-np.asarray(scores[name]), kind="stable")
        values, counts = [], []
        for ratio in ratios:
            done += 1
            n_remove = int(np.floor(ratio * size + 0.5))  # round half up
            n_keep = max(int(min_channels), size - n_remove)
            n_keep = min(n_keep, size)
            if n_keep == size:
                values.append(baseline)
            else:
                keep = np.sort(order[:n_keep]).tolist()
                thin, _ = thin_model(model, {name: keep})
                values.append(float(evaluate(thin)))
            counts.append(n_keep)
            if bar is not None:
                bar.update(done)
        results[name] = values
        kept[name] = counts
    return SensitivityReport(baseline, ratios, results, kept, metric_name)
