"""`L1Norm` (alias `"l1"`): filter L1 norms, Li et al. 2017.

Data-free one-shot criterion: a channel is as important as the sum of the
absolute weights of the filter(s) producing it.
"""

import keras

from keras_neuronprune.criteria._filter_norm import FilterNorm


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class L1Norm(FilterNorm):
    """Importance of channel `j`: `sum |W_j|` over its filter.

    For a Conv2D kernel `(kh, kw, in, out)` the filter of output channel `j`
    is `kernel[..., j]`; Dense kernels `(in, out)` use column `j`,
    SeparableConv2D its pointwise kernel, transposed convolutions axis -2.
    Masked layers are read with their masks folded in, so removed channels
    score 0.

    Args:
        reduction: how the norms of the producers of a group (several
            convolutions added by a residual connection) are combined:
            "sum", "mean" or "max".
        normalize: per member (layer) normalisation before the reduction:
            "none" (raw norms, comparable globally only when layers are
            similar), "mean", "max" or "l2" (divide by the layer's mean /
            max / L2 norm of the group's scores; use one with a global
            ranking).
        include_consumers: also add the L1 norm of the weights that read
            the channel in the consuming layers.

    Example:

    ```python
    scores = keras_neuronprune.criteria.get("l1").score(
        ScoringContext(model, keras_neuronprune.channel_groups(model)))
    ```

    Reference:
        Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017,
        arXiv:1608.08710.
    """

    p = 1
    alias = "l1"
