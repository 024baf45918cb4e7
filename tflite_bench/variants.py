"""The pruned versions of a dense model that a benchmark family times.

Two kinds, both physically thinned before export:

- uniform: `ratio` of every prunable channel group removed
  (`keras_neuronprune.uniform_keep` + `keras_neuronprune.thin_model`);
- criterion: one-shot pruning with a channel criterion
  (`keras_neuronprune.prune_structured(..., criterion=name)`, pruned once,
  then `keras_neuronprune.strip_pruning`). Criteria that rank channels
  globally (Taylor, Network Slimming, RNI, ...) give every layer its own
  width, so their speed differs from the uniform model of the same ratio.

The models are not fine-tuned: latency, size and FLOPs do not depend on
the weight values, accuracy (with `--data`) does and shows the criterion's
one-shot damage.
"""

import numpy as np

# Calibration images for data-driven criteria (Taylor, ThiNet, ...); SOSP
# needs at least 64 for a stable estimate.
CALIBRATION_SAMPLES = 64
CALIBRATION_BATCH = 16


def variant_label(ratio, round_to, criterion=None):
    """Row label: `r50_rt8` (uniform) or `taylor_r50_rt8` (criterion)."""
    base = f"r{int(round(ratio * 100))}_rt{round_to}"
    return base if criterion is None else f"{criterion}_{base}"


def check_criteria(names):
    """Resolves criterion names early, with a clear error.

    Args:
        names: criterion names (`keras_neuronprune.criteria.get` aliases).

    Returns:
        The names as a tuple.

    Raises:
        ValueError: an unknown name.
    """
    from keras_neuronprune import criteria

    for name in names:
        try:
            criteria.get(name)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"Unknown criterion in `criteria`. Received: {name!r} ({e})"
            ) from None
    return tuple(names)


def calibration_batches(model, data=None, num_samples=CALIBRATION_SAMPLES):
    """(x, y) batches for data-driven criteria.

    Uses the first `num_samples` examples of `data` (x, y) when given.
    Otherwise seeded normal images labelled with the dense model's own
    predictions, so gradient criteria measure how much each channel moves
    the model away from what it predicts now (a label-free proxy; random
    labels would make every score noise).

    Args:
        model: the dense Keras model (single input, class logits or
            probabilities as its output).
        data: optional (x, y) arrays.
        num_samples: number of calibration examples.

    Returns:
        A list of (x, y) numpy batches.
    """
    if data is not None:
        x, y = data
        x = np.asarray(x[:num_samples], "float32")
        y = np.asarray(y[:num_samples]).reshape(-1).astype("int64")
    else:
        shape = (num_samples,) + tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(1).standard_normal(shape).astype("float32")
        y = np.argmax(np.asarray(model.predict(x, verbose=0)), axis=-1)
        y = y.reshape(-1).astype("int64")
    return [
        (x[i : i + CALIBRATION_BATCH], y[i : i + CALIBRATION_BATCH])
        for i in range(0, len(x), CALIBRATION_BATCH)
    ]


def classification_loss(model):
    """Sparse cross-entropy matching the model's output (logits or not)."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    probabilities = activation in (
        keras.activations.softmax,
        keras.activations.sigmoid,
    ) or isinstance(last, keras.layers.Softmax)
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=not probabilities
    )


def criterion_model(model, criterion, ratio, round_to, calibration=None):
    """One-shot prunes `model` with `criterion` and strips it.

    Args:
        model: the dense Keras model (not modified).
        criterion: criterion name.
        ratio: fraction of channels removed (per group, or across groups
            for criteria that rank globally).
        round_to: kept channel counts are multiples of this.
        calibration: (x, y) batches for data-driven criteria.

    Returns:
        The physically thinner Keras model.
    """
    from keras_neuronprune import criteria
    from keras_neuronprune import prune_structured
    from keras_neuronprune import strip_pruning

    needs_data = getattr(criteria.get(criterion), "requires_data", False)
    pruned = prune_structured(
        model,
        criterion=criterion,
        pruning_ratio=ratio,
        round_to=round_to,
        data=calibration if needs_data else None,
        loss=classification_loss(model) if needs_data else None,
    )
    pruned.controller.prune(pruned)
    return strip_pruning(pruned)


def variants(model, ratios, round_tos, criteria=(), data=None):
    """Yields (label, ratio, round_to, criterion, keras model).

    The dense model comes first (label "dense", criterion None); then the
    uniform prunings (criterion "uniform") of every ratio and `round_to`,
    then every criterion at every ratio and `round_to`.

    Args:
        model: the dense Keras model (not modified).
        ratios: pruning ratios in (0, 1).
        round_tos: `round_to` values.
        criteria: criterion names for one-shot criterion pruning.
        data: optional (x, y) arrays; calibration data for data-driven
            criteria.
    """
    from keras_neuronprune import criteria as knp_criteria
    from keras_neuronprune import thin_model
    from keras_neuronprune import uniform_keep

    yield "dense", 0.0, None, None, model
    for ratio in ratios:
        for round_to in round_tos:
            keep = uniform_keep(model, ratio, round_to=round_to)
            pruned, _ = thin_model(model, keep)
            label = variant_label(ratio, round_to)
            yield label, float(ratio), int(round_to), "uniform", pruned
    calibration = None
    for name in criteria:
        needs_data = getattr(knp_criteria.get(name), "requires_data", False)
        if needs_data and calibration is None:
            calibration = calibration_batches(model, data)
        for ratio in ratios:
            for round_to in round_tos:
                pruned = criterion_model(
                    model, name, ratio, round_to, calibration
                )
                label = variant_label(ratio, round_to, name)
                yield label, float(ratio), int(round_to), name, pruned
