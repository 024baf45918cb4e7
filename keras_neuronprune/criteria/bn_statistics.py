"""`BNStatistics` (alias `"bn_stats"`): data-free score from BN parameters.

After a BatchNormalization with scale `gamma` and shift `beta`, a channel's
pre-activation is approximately `N(beta, gamma**2)`; a channel that is
almost always cut by the following ReLU (`beta << 0`) or almost constant
(`|gamma|` tiny) carries little information. This criterion scores the
expected rectified activation, computed from the BN parameters alone.
"""

import math

import keras
import numpy as np

from keras_neuronprune.criteria._bn_criterion import BNParameterCriterion
from keras_neuronprune.criteria.base_criterion import check_normalize

_STATISTICS = ("mean", "second_moment")
_erf = np.vectorize(math.erf, otypes=["float64"])


def _cdf(z):
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))


def _pdf(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def rectified_gaussian_moment(mean, std, statistic="mean"):
    """`E[relu(z)]` or `E[relu(z)**2]` for `z ~ N(mean, std**2)`.

    Args:
        mean: array of means (BN `beta`).
        std: array of standard deviations (BN `|gamma|`), >= 0.
        statistic: "mean" or "second_moment".

    Returns:
        float64 array; for `std == 0` the moments of `relu(mean)`.
    """
    mean = np.asarray(mean, "float64")
    std = np.abs(np.asarray(std, "float64"))
    safe = np.where(std > 0, std, 1.0)
    a = mean / safe
    if statistic == "mean":
        value = mean * _cdf(a) + std * _pdf(a)
        degenerate = np.maximum(mean, 0.0)
    else:
        value = (mean**2 + std**2) * _cdf(a) + mean * std * _pdf(a)
        degenerate = np.maximum(mean, 0.0) ** 2
    return np.where(std > 0, np.maximum(value, 0.0), degenerate)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class BNStatistics(BNParameterCriterion):
    """Expected ReLU activation of `N(beta, gamma**2)` per channel.

    The paper's exact equation was not available (CRITERIA.md marks it
    UNCONFIRMED); this implementation chooses the expected rectified
    activation `E[relu(z)] = beta * Phi(beta / |gamma|) + |gamma| *
    phi(beta / |gamma|)`, which is 0 for channels that ReLU always cuts and
    for removed channels, grows with both `beta` and `|gamma|`, and reduces
    to `|gamma| / sqrt(2 pi)` (Network Slimming's order) when `beta = 0`.
    `statistic="second_moment"` uses `E[relu(z)**2]` instead (the channel's
    energy after ReLU). Members read: every BatchNormalization outputting
    the group's channels (a `BoundedBatchNormalization` contributes
    `sigmoid(gamma)`), combined by `reduction`; groups without one get the
    top score (see `Criterion`). No data, no gradients.

    Args:
        reduction: "sum", "mean" or "max" over the group's BNs.
        statistic: "mean" or "second_moment".
        normalize: "none", "mean", "max" or "l2" per BN.

    Example:

    ```python
    scores = keras_neuronprune.criteria.get("bn_stats").score(context)
    ```

    Reference:
        Oh et al., "Batch Normalization Tells You Which Filter is
        Important", WACV 2022, arXiv:2112.01155.
    """

    alias = "bn_stats"
    config_keys = ("statistic", "normalize")

    def __init__(self, reduction="sum", statistic="mean", normalize="none"):
        super().__init__(reduction)
        if statistic not in _STATISTICS:
            raise ValueError(
                f"`statistic` must be one of {_STATISTICS}. "
                f"Received: statistic={statistic!r}"
            )
        self.statistic = statistic
        self.normalize = check_normalize(normalize)

    def bn_scores(self, scale, shift):
        return rectified_gaussian_moment(shift, scale, self.statistic)
