"""`Taylor` (alias `"taylor"`): first-order Taylor importance on gates.

Molchanov et al. 2019's best criterion ("Taylor_gate"): the squared
first-order change of the loss when a channel's gate goes from 1 to 0,
computed from the gradients of calibration batches. Needs `data` and
`loss`.
"""

import keras

from keras_neuronprune.criteria._taylor_base import GateTaylorBase


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class Taylor(GateTaylorBase):
    """`(w * dL/dw)**2` for a gate `w` after each BatchNormalization.

    Per calibration batch, `dL/dw_c` is the gradient of the batch-mean loss
    w.r.t. a per-channel gate (read from the `ChannelGate` that
    `prune_structured` inserts, or, without one, computed exactly as
    `sum(a * dL/da)` over the batch and the spatial positions of the gated
    layer's output `a`, which equals it for `w = 1`). The batch scores are
    squared (not absolute, as in the paper) and averaged over the batches
    (weighted by batch size), which is the paper's averaging over its
    `frequency` = 30 mini-batches. Points are the group's BatchNormalization
    outputs (or its producers without BN); several points (a residual
    group, like the paper's gate shared by a stage) are combined by
    `reduction` (the paper sums; use "mean" for its division by the number
    of blocks). No per-layer normalisation by default (global ranking).

    Molchanov et al. also smooth the score across pruning iterations with
    momentum 0.9: `prune_structured(importance_momentum=0.9)` does that
    with its state saved in the model; `momentum` here does the same inside
    this object (state lost on reload), for standalone use. Do not use
    both.

    Args:
        reduction: "sum", "mean" or "max" over the group's gate points.
        normalize: "none", "mean", "max" or "l2" per gate point.
        momentum: EMA factor across `score` calls, in [0, 1).
        max_samples: read at most this many calibration samples.

    Raises:
        ValueError: from `score`, without `data` or `loss`.

    Example:

    ```python
    criterion = keras_neuronprune.criteria.Taylor()
    scores = criterion.score(ScoringContext(
        model, groups, data=[(x, y)], loss="sparse_categorical_crossentropy"))
    ```

    Reference:
        Molchanov et al., "Importance Estimation for Neural Network
        Pruning", CVPR 2019, arXiv:1906.10771.
    """

    alias = "taylor"

    def _batch_scores(self, per_example, spatial):
        return per_example.mean(axis=0) ** 2
