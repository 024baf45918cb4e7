"""`singe_prune`: SInGE's entwined prune / fine-tune loop."""

from keras_neuronprune.criteria.singe import SInGE
from keras_neuronprune.pruning.iterative import criterion_score_fn
from keras_neuronprune.pruning.iterative import default_fine_tune
from keras_neuronprune.pruning.iterative import iterative_prune
from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown


def singe_prune(
    model,
    data,
    loss,
    pruning_ratio=None,
    iterations=5,
    fine_tune=None,
    fine_tune_steps=20,
    learning_rate=1e-3,
    steps=8,
    min_channels=1,
    **kwargs,
):
    """SInGE's entwined loop: prune a few channels, fine-tune, repeat.

    Each iteration scores every prunable group with `SInGE` on the current
    model, removes the globally least relevant channels (an equal share of
    the total `pruning_ratio` per iteration) with `thin_model`, then
    fine-tunes.

    Args:
        model: trained model (not modified).
        data: iterable of `(x, y)` batches (calibration and fine-tuning).
        loss: Keras loss.
        pruning_ratio: fraction of all prunable channels removed in the
            end (`ratio=` is its deprecated spelling).
        iterations: number of prune / fine-tune rounds.
        fine_tune: `fine_tune(model, batches) -> model or None`; default:
            `fine_tune_steps` SGD steps (momentum 0.9) at `learning_rate`.
        fine_tune_steps, learning_rate: the default fine-tuning.
        steps: Riemann points of each SInGE path.
        min_channels: channels every group keeps at least.

    Returns:
        `(new_model, history)`; `history` has one dict per round.

    Raises:
        ValueError: for bad data, a bad `pruning_ratio` or `iterations`.

    Example:
        >>> thin, history = singe_prune(model, data, "mse", pruning_ratio=0.3)

    Reference:
        Yvinec et al., SInGE, NeurIPS 2022, https://arxiv.org/abs/2207.04089
    """
    pruning_ratio = pop_renamed(
        kwargs, "ratio", "pruning_ratio", pruning_ratio, where="singe_prune"
    )
    reject_unknown(kwargs, "singe_prune")
    batches = calibration_batches(
        data, model, "singe_prune", min_samples=1, needs_targets=True
    )
    criterion = SInGE(steps=steps, min_samples=1)
    if fine_tune is None:
        fine_tune = default_fine_tune(loss, learning_rate, fine_tune_steps)

    score_fn = criterion_score_fn(criterion, batches, loss)
    return iterative_prune(
        model, batches, score_fn, pruning_ratio, iterations, fine_tune,
        min_channels,
    )  # fmt: skip
