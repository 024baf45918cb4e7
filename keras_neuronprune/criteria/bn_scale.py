"""`BNScale` (alias `"bn_scale"`, also `"l1_gamma"`): Network Slimming.

Scores a channel by `|gamma|` of the BatchNormalization(s) it passes
through. With `prune_structured` it also trains the sparsity in: its
`regularizer_for` puts `SlimmingRegularizer(strength)` (L1) on every
BatchNormalization's `gamma`.
"""

import keras
import numpy as np

from keras_neuronprune.criteria._bn_criterion import BNParameterCriterion
from keras_neuronprune.criteria.base_criterion import check_normalize
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.regularizers import SlimmingRegularizer
from keras_neuronprune.regularizers._validation import non_negative_float


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class BNScale(BNParameterCriterion):
    """Importance of a channel: `|gamma|` of its BatchNormalization.

    Members read: every BatchNormalization (or subclass) that outputs the
    group's channels; masked channels score 0, a `BoundedBatchNormalization`
    contributes `sigmoid(gamma)`. Several BNs in one group (residual
    branches) are combined by `reduction`. Groups without a
    BatchNormalization get the top score (see `Criterion`).

    Args:
        reduction: "sum", "mean" or "max" over the group's BNs.
        normalize: "none" (the paper: one global threshold on raw
            `|gamma|`), "mean", "max" or "l2" per BN.
        strength: L1 weight of the sparsity regulariser attached during
            training (1e-4 for VGG in the paper, 1e-5 for ResNet-164 and
            DenseNet-40); 0 disables it.

    Example:

    ```python
    pruned = keras_neuronprune.prune_structured(
        model, criterion=keras_neuronprune.criteria.BNScale(strength=1e-5),
        pruning_ratio=0.4)
    ```

    Reference:
        Liu et al., "Learning Efficient Convolutional Networks through
        Network Slimming", ICCV 2017, arXiv:1708.06519.
    """

    alias = "bn_scale"
    config_keys = ("normalize", "strength")

    def __init__(self, reduction="sum", normalize="none", strength=1e-4):
        super().__init__(reduction)
        self.normalize = check_normalize(normalize)
        self.strength = non_negative_float(strength, "strength")

    def regularizer_for(self, layer):
        if self.strength == 0 or not isinstance(
            layer, keras.layers.BatchNormalization
        ):
            return None
        if isinstance(layer, BoundedBatchNormalization) or not layer.scale:
            return None
        return SlimmingRegularizer(self.strength)

    def regularized_weight(self, layer):
        return "gamma" if self.regularizer_for(layer) is not None else None

    def bn_scores(self, scale, shift):
        return np.abs(scale)
