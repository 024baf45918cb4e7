"""`TaylorSecondOrder` (alias `"taylor_so"`): second-order Taylor on gates.

Molchanov et al. 2019's second-order variant: the loss change when a gate
goes from `w` to 0, `-w * g + 0.5 * w**2 * H`, squared, with the diagonal
Hessian `H` of the gate approximated by the empirical Fisher information.
Needs `data` and `loss`.
"""

import keras

from keras_neuronprune.criteria._taylor_base import GateTaylorBase


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class TaylorSecondOrder(GateTaylorBase):
    """`(-w * g + 0.5 * w**2 * H)**2` per channel gate `w`.

    Per calibration batch, `w * g` is the batch-mean gradient term of
    `keras_neuronprune.criteria.Taylor` and `w**2 * H` is approximated by
    the mean over the batch's examples of `(w * dL_n/dw)**2` (the
    empirical Fisher diagonal, exact in expectation for a well-fit
    model with the log-likelihood loss; it needs one backward pass, where
    the exact diagonal would need one Hessian-vector product per channel).
    The squared change is averaged over batches, as for `taylor`.

    Args:
        reduction: "sum", "mean" or "max" over the group's gate points.
        normalize: "none", "mean", "max" or "l2" per gate point.
        momentum: EMA factor across `score` calls, in [0, 1).
        max_samples: read at most this many calibration samples.

    Raises:
        ValueError: from `score`, without `data` or `loss`.

    Example:

    ```python
    criterion = keras_neuronprune.criteria.get("taylor_so")
    ```

    Reference:
        Molchanov et al., "Importance Estimation for Neural Network
        Pruning", CVPR 2019, arXiv:1906.10771.
    """

    alias = "taylor_so"

    def _batch_scores(self, per_example, spatial):
        first = per_example.mean(axis=0)
        fisher = (per_example**2).mean(axis=0)
        return (-first + 0.5 * fisher) ** 2
