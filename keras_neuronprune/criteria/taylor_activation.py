"""`TaylorActivation` (alias `"taylor_activation"`): Molchanov et al. 2017.

The first-order Taylor estimate of the loss change when a feature map is
set to zero, from activations times their gradients on calibration
batches, normalised per layer. Needs `data` and `loss`.
"""

import keras

from keras_neuronprune.criteria._taylor_base import GateTaylorBase


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class TaylorActivation(GateTaylorBase):
    """`|(1/M) sum_m a_m * dC/da_m|` per example, averaged, L2-normalised.

    For each example `n` and feature map `c` of a gate point (the group's
    BatchNormalization outputs, or producers without BN), the paper's
    `Theta = |mean over the M spatial positions of a * dC_n/da|`, with
    `C_n` the example's own loss (the absolute value is taken per example
    after the spatial mean, as in the paper's formula; the NVlabs
    re-implementation takes it before the mean). `Theta` is averaged over
    all calibration examples, then divided by its L2 norm over the
    layer's channels (`normalize="l2"`, the paper's layer-wise
    normalisation; computed over the group's channels of that layer).
    The optional FLOPs penalty of the paper is left to the caller's
    ranking. Several points are combined by `reduction`.

    Args:
        reduction: "sum", "mean" or "max" over the group's points.
        normalize: "l2" (default, the paper), "none", "mean" or "max".
        momentum: EMA factor across `score` calls, in [0, 1).
        max_samples: read at most this many calibration samples.

    Raises:
        ValueError: from `score`, without `data` or `loss`.

    Example:

    ```python
    criterion = keras_neuronprune.criteria.get("taylor_activation")
    ```

    Reference:
        Molchanov et al., "Pruning Convolutional Neural Networks for
        Resource Efficient Inference", ICLR 2017, arXiv:1611.06440.
    """

    alias = "taylor_activation"
    default_normalize = "l2"

    def _batch_scores(self, per_example, spatial):
        return (abs(per_example) / spatial).mean(axis=0)
