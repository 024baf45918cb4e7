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
import numpy as np

from keras_neuronprune.criteria._layer_utils import bn_members
from keras_neuronprune.criteria._layer_utils import first_positions
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.regularizers import RNIRegularizer
from keras_neuronprune.regularizers._validation import finite_float
from keras_neuronprune.regularizers._validation import non_negative_float
from keras_neuronprune.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class RNI(Criterion):
    """Importance of a channel: `sigmoid(gamma) * channel_mask`.

    Members read: the `BoundedBatchNormalization` layers that output the
    group's channels, combined by `reduction` (default "max": in a residual
    group a channel stays as important as its most important branch, and
    the score stays in (0, 1) so one global threshold applies). Groups
    without a `BoundedBatchNormalization` get the top score 1 (see
    `Criterion`); a model with none raises.

    Training in the importances. The paper's regulariser alone recedes
    channels only over long schedules (160 epochs, SGD with 10x learning
    rate on `gamma`) and from importances that start spread (N(0, 1)). From
    a trained network the swapped-in importances start at 0.87-0.97, where
    the penalty's gradient is about 0, and nothing recedes in a short
    budget (measured on Fashion-MNIST: no channel below 0.1 after 3
    regularised epochs, accuracy at chance once masked). So, with
    `recede=True` (default), the channels that pruning would remove now
    (re-planned every `update_interval` steps from the current
    importances, with the same targets, global ranking and limits the
    controller applies) are moved, every step, a share of the way to
    `receded_importance` (their BatchNorm shift to 0) so that they arrive
    after 3/4 of the steps before the pruning step and hold there while
    the rest of the network and the BatchNorm statistics adapt; masking
    them then costs almost nothing. This needs a schedule with a pruning
    `step` (the default `OneShot(fraction=0.5)`). After pruning the
    regulariser is switched off for fine-tuning. `recede=False` is the
    paper's regulariser-only method.

    Args:
        reduction: "max" (default), "mean" or "sum".
        strength: lambda of the `RNIRegularizer` attached during training;
            0 disables it.
        shift: the regulariser's shift `b`.
        recede: move the channels due to go to `receded_importance`
            before the pruning step (see above).
        receded_importance: the importance receded channels reach, in
            (0, 0.5).
        update_interval: steps between re-plannings of the channels due
            to go.

    Raises:
        ValueError: from `score` when the model has no
            `BoundedBatchNormalization` in any prunable group.

    Example:

    ```python
    # Recede during the first half of `fit`, prune, fine-tune.
    pruned = keras_neuronprune.prune_structured(
        model, criterion="rni", pruning_ratio=0.5)
    # The paper's regulariser-only variant, pruning at step 2000.
    pruned = keras_neuronprune.prune_structured(
        model, criterion=keras_neuronprune.criteria.RNI(recede=False),
        pruning_ratio=0.5,
        schedule=keras_neuronprune.schedules.OneShot(step=2000))
    ```

    Reference:
        Suteu and Guo, "Receding Neuron Importances for Structured
        Pruning", arXiv:2204.06404.
    """

    alias = "rni"

    def __init__(
        self,
        reduction="max",
        strength=1e-4,
        shift=3.0,
        recede=True,
        receded_importance=1e-4,
        update_interval=10,
    ):
        super().__init__(reduction)
        self.strength = non_negative_float(strength, "strength")
        self.shift = finite_float(shift, "shift")
        if not isinstance(recede, bool):
            raise ValueError(
                f"`recede` must be True or False. Received: recede={recede!r}"
            )
        self.recede = recede
        try:
            receded_importance = float(receded_importance)
        except (TypeError, ValueError):
            receded_importance = float("nan")
        if not 0.0 < receded_importance < 0.5:
            raise ValueError(
                "`receded_importance` must be in (0, 0.5). Received: "
                f"receded_importance={receded_importance!r}"
            )
        self.receded_importance = receded_importance
        self.update_interval = check_int(update_interval, "update_interval", 1)
        self._due = {}
        self._start = None

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

    def update(self, context):
        """Recedes the channels due to go; switches the penalty off after.

        Called by the controller after every training batch. Until the
        schedule's pruning step, every `update_interval` steps it asks the
        controller which channels pruning would remove now
        (`context.planned_keep`) and, every step, moves their raw `gamma`
        the remaining share of the way to `logit(receded_importance)`, so
        they reach it at the pruning step while the rest of the network
        trains around them; masking them then changes almost nothing.
        Once a channel mask holds a 0 (the model is pruned), the penalty is
        switched off so that fine-tuning runs without it, as in the paper.
        """
        layers = self._bounded_layers(context)
        if not layers:
            return
        if any(np.any(layer.channel_mask.numpy() == 0) for layer, _ in layers):
            for _, reg in layers:
                reg.factor.assign(0.0)
            self._due = {}
            return
        prune_step = getattr(context, "prune_step", None)
        step = int(context.step)
        if not self.recede or prune_step is None or step >= prune_step:
            return
        if self._start is None or step < self._start:
            self._start = step
        # Reach the receded value after 3/4 of the phase and hold it for the
        # last quarter, so the layers after them (and their BatchNorm
        # statistics) settle before the mask is applied.
        # While they hold, the channels are clamped there (the loss would
        # otherwise move their shift again).
        arrive = prune_step - (prune_step - self._start) // 4
        if not self._due or (
            step < arrive - 1 and step % self.update_interval == 0
        ):
            self._plan(context)
        target = float(np.log(self.receded_importance)) - float(
            np.log1p(-self.receded_importance)
        )
        # The step counter is advanced after this hook: `remaining` counts
        # the updates still to come before the pruning step, this one too.
        remaining = max(1, arrive - 1 - step)
        for layer, _ in layers:
            due = self._due.get(layer.name)
            if due is None or not due.any():
                continue
            gamma = np.asarray(layer.gamma.numpy(), "float64")
            gap = np.maximum(gamma[due] - target, 0.0)
            gamma[due] -= gap / remaining
            layer.gamma.assign(gamma.astype(layer.gamma.dtype))
            if layer.center:
                # A receded channel must output 0, not its shift, or the
                # mask would remove a constant the next layers rely on.
                beta = np.asarray(layer.beta.numpy(), "float64")
                beta[due] -= beta[due] / remaining
                layer.beta.assign(beta.astype(layer.beta.dtype))

    def _plan(self, context):
        planned = getattr(context, "planned_keep", None)
        keep = planned() if planned is not None else None
        if keep is None:
            return
        due = {}
        for group in self.prunable_groups(context):
            kept = keep.get(group.name)
            for member, layer in bn_members(
                group, context.model, bounded_only=True
            ):
                mask = due.setdefault(
                    layer.name, np.zeros(layer.gamma.shape[0], bool)
                )
                if kept is None:
                    continue
                positions = first_positions(member)
                removed = np.ones(len(positions), bool)
                removed[np.asarray(kept, int)] = False
                mask[positions[removed]] = True
        self._due = due

    def _bounded_layers(self, context):
        found = []
        for group in self.prunable_groups(context):
            for _, layer in bn_members(group, context.model, bounded_only=True):
                reg = _rni_regularizer(layer)
                if reg is not None:
                    found.append((layer, reg))
        return found

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "strength": self.strength,
                "shift": self.shift,
                "recede": self.recede,
                "receded_importance": self.receded_importance,
                "update_interval": self.update_interval,
            }
        )
        return config


def _rni_regularizer(layer):
    reg = getattr(layer, "gamma_regularizer", None)
    return reg if isinstance(reg, RNIRegularizer) else None
