"""`L2Norm` (alias `"l2"`): filter L2 norms (the L2 variant of Li et al.).

Data-free one-shot criterion, same members and options as `L1Norm`.
"""

import keras

from keras_neuronprune.criteria._filter_norm import FilterNorm


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class L2Norm(FilterNorm):
    """Importance of channel `j`: `sqrt(sum W_j**2)` over its filter.

    Same members, masks and options as `keras_neuronprune.criteria.L1Norm`;
    with `include_consumers` the producer and consumer norms are combined by
    `reduction` after each is normalised.

    Args:
        reduction: "sum", "mean" or "max" over the group's members.
        normalize: "none", "mean", "max" or "l2" per member.
        include_consumers: also score the consumers' input weights.

    Example:

    ```python
    criterion = keras_neuronprune.criteria.get("l2")
    ```

    Reference:
        Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017,
        arXiv:1608.08710.
    """

    p = 2
    alias = "l2"
