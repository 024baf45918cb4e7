"""`hessian_spectral_prune`: train and prune guided by the Hessian."""

from keras_neuronprune.criteria.hessian_spectral import HessianSpectral
from keras_neuronprune.pruning.iterative import criterion_score_fn
from keras_neuronprune.pruning.iterative import default_fine_tune
from keras_neuronprune.pruning.iterative import iterative_prune
from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown


def hessian_spectral_prune(
    model,
    data,
    loss,
    pruning_ratio=None,
    iterations=5,
    train_steps=50,
    warmup_steps=100,
    learning_rate=1e-2,
    flatness_weight=0.5,
    train=None,
    min_channels=1,
    **kwargs,
):
    """Trains and prunes together, guided by the Hessian spectral radius.

    The model is trained for `warmup_steps`, then `iterations` times: score
    every channel with `HessianSpectral` on the current weights, remove the
    globally lowest-scoring share of `pruning_ratio` with `thin_model`, and
    train `train_steps` more steps. The method is meant to start from an
    untrained (or lightly trained) model.

    Args:
        model: the model (not modified; training happens on a copy).
        data: iterable of `(x, y)` batches.
        loss: Keras loss.
        pruning_ratio: fraction of all prunable channels removed in the
            end (`ratio=` is its deprecated spelling).
        iterations: number of prune rounds.
        train_steps: SGD steps after each round.
        warmup_steps: SGD steps before the first round.
        learning_rate: SGD (momentum 0.9) learning rate.
        flatness_weight: see `HessianSpectral`.
        train: optional `train(model, batches, steps) -> model or None`
            replacing the built-in SGD steps.
        min_channels: channels every group keeps at least.

    Returns:
        `(new_model, history)`.

    Raises:
        ValueError: for bad data, a bad `pruning_ratio` or `iterations`.

    Example:
        >>> thin, history = hessian_spectral_prune(
        ...     model, data, "sparse_categorical_crossentropy",
        ...     pruning_ratio=0.5)

    Reference:
        Ebrahimi & Klabjan, "Neuron-based Pruning of Deep Neural Networks
        with Better Generalization using Kronecker Factored Curvature
        Approximation", 2021, https://arxiv.org/abs/2111.08577
    """
    from keras_neuronprune.rewrite import thin_model

    where = "hessian_spectral_prune"
    pruning_ratio = pop_renamed(
        kwargs, "ratio", "pruning_ratio", pruning_ratio, where=where
    )
    reject_unknown(kwargs, where)
    batches = calibration_batches(data, model, where, needs_targets=True)
    if train is None:

        def train(current, batches, steps):
            return default_fine_tune(loss, learning_rate, steps)(
                current, batches
            )

    start, _ = thin_model(model, {})
    replaced = train(start, batches, warmup_steps)
    start = replaced if replaced is not None else start
    criterion = HessianSpectral(flatness_weight=flatness_weight, min_samples=1)

    score_fn = criterion_score_fn(criterion, batches, loss)

    def fine_tune(current, b):
        return train(current, b, train_steps)

    return iterative_prune(
        start, batches, score_fn, pruning_ratio, iterations, fine_tune,
        min_channels,
    )  # fmt: skip
