"""`RNI` (alias `"rni"`): Receding Neuron Importances.

The importance of a channel is `sigmoid(gamma)` of the
`BoundedBatchNormalization` it passes through; during training
(`prune_structured(criterion="rni")` swaps every BatchNormalization of the
prunable groups for a `BoundedBatchNormalization`) its `regularizer_for`
attaches `RNIRegularizer(strength, shift)` to those layers' `gamma`, which
makes the importances bimodal so that one global threshold (the paper keeps
channels with importance above the `pruning_ratio` quantile, at least 3
per layer) separates them.
"""

import keras

from keras_neuronprune.criteria._layer_utils import bn_members
from keras_neuronprune.criteria._layer_utils import first_positions
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.regularizers import RNIRegularizer
from keras_neuronprune.regularizers._validation import finite_float
from keras_neuronprune.regularizers._validation import non_negative_float


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class RNI(Criterion):
    """Importance of a channel: `sigmoid(gamma) * channel_mask`.

    Members read: the `BoundedBatchNormalization` layers that output the
    group's channels, combined by `reduction` (default "max": in a residual
    group a channel stays as important as its most important branch, and
    the score stays in (0, 1) so one global threshold applies). Groups
    without a `BoundedBatchNormalization` get the top score 1 (see
    `Criterion`); a model with none raises.

    Args:
        reduction: "max" (default), "mean" or "sum".
        strength: lambda of the `RNIRegularizer` attached during training;
            0 disables it.
        shift: the regulariser's shift `b`.

    Raises:
        ValueError: from `score` when the model has no
            `BoundedBatchNormalization` in any prunable group.

    Example:

    ```python
    pruned = keras_neuronprune.prune_structured(
        model, criterion=keras_neuronprune.criteria.RNI(strength=1e-4),
        pruning_ratio=0.5, schedule=keras_neuronprune.schedules.OneShot(
            step=2000))
    ```

    Reference:
        Suteu and Guo, "Receding Neuron Importances for Structured
        Pruning", arXiv:2204.06404.
    """

    alias = "rni"

    def __init__(self, reduction="max", strength=1e-4, shift=3.0):
        super().__init__(reduction)
        self.strength = non_negative_float(strength, "strength")
        self.shift = finite_float(shift, "shift")

    def regularizer_for(self, layer):
        if self.strength == 0 or not isinstance(
            layer, BoundedBatchNormalization
        ):
            return None
        return RNIRegularizer(self.strength, self.shift)

    def regularized_weight(self, layer):
        return "gamma" if self.regularizer_for(layer) is not None else None

    def supports(self, group, model):
        return bool(bn_members(group, model, bounded_only=True))

    def score(self, context):
        groups = self.prunable_groups(context)
        scores, missing = {}, set()
        for group in groups:
            members = [
                layer.importances()[first_positions(member)]
                for member, layer in bn_members(
                    group, context.model, bounded_only=True
                )
            ]
            if not members:
                missing.add(group.name)
                continue
            scores[group.name] = check_finite_scores(
                self.reduce(members), group.name
            )
        if groups and not scores:
            raise ValueError(
                "Criterion 'rni' reads BoundedBatchNormalization layers, but "
                "no prunable channel group of the model has one. Use "
                "`prune_structured(model, criterion='rni')`, which swaps "
                "them in, or build the model with "
                "keras_neuronprune.layers.BoundedBatchNormalization."
            )
        # The bounded importances never exceed 1.
        return self.fill_unsupported(scores, groups, missing, top=1.0)

    def get_config(self):
        config = super().get_config()
        config.update({"strength": self.strength, "shift": self.shift})
        return config
