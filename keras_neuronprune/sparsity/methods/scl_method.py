"""`SclMethod`: masks learned with a straight-through estimator (SCL)."""

import keras
import numpy as np

from keras_neuronprune.sparsity._optimizer_slots import reset_all_slots
from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.utils.validation import check_int
from keras_neuronprune.utils.validation import check_non_negative
from keras_neuronprune.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class SclMethod(BaseMethod):
    """Sparse Connectivity Learning: the network learns which weights to keep.

    Every masked layer holds a real-valued score `m` per weight; the
    forward pass uses `W * step(m)` and the backward pass an identity
    straight-through estimator, `dL/dm := dL/dM`, with the mask gradients of
    every output feature divided by their root mean square (the paper
    normalises per feature; its exact formula is unpublished). A
    connection-count penalty `lambda * sum(step(m))` adds `lambda` to every
    score's gradient (identity STE), so a connection survives only while its
    normalised task gradient keeps pushing its score up by more than
    `lambda`. The penalty enters in the backward pass rather than through
    `add_loss`, so the logged loss is the task loss; `lambda` is therefore
    in units of a feature's RMS mask gradient (default 0.1, an unpublished
    value chosen on small benchmarks). Scores start at `mask_init` (0.05,
    likewise a choice: small enough that a few hundred Adam steps at lr
    1e-3 can prune).

    With `sparsity` given the method targets it: every `update_frequency`
    steps `lambda` is multiplied by `1 + penalty_rate` while the learned
    sparsity is below the schedule's value and divided by it otherwise.
    At `end_step` the masks are frozen: with a target, the global top
    `(1 - sparsity)` scores are kept (so the final sparsity is exact),
    without one `step(m)` is kept as learned; the pruned weights are then
    zeroed and training continues with fixed masks. Without `end_step` the
    masks are never frozen and stripping uses `step(m)`.

    Args:
        end_step: the step at which masks freeze (None: never).
        penalty: initial connection-count penalty lambda, >= 0 (0.1).
        penalty_rate: relative change of lambda per adaptation, > 0 (0.1).
        mask_init: initial mask score, > 0 (0.05).
        update_frequency: steps between penalty adaptations (10).

    Raises:
        ValueError: for an argument out of range.

    Example:
    ```python
    pruned = keras_neuronprune.sparsity.prune_weights(
        model, method=SclMethod(end_step=1000, penalty=0.2), sparsity=0.8)
    ```

    Reference:
        Tang et al., "Automatic Sparse Connectivity Learning for Neural
        Networks", arXiv:2201.05020.
    """

    name = "scl"
    default_distribution = "global"
    distributions = ("global",)
    supports_patterns = False
    learned_mask = True
    needs_sparsity = False

    def __init__(
        self,
        end_step=None,
        penalty=0.1,
        penalty_rate=0.1,
        mask_init=0.05,
        update_frequency=10,
    ):
        super().__init__()
        self.end_step = (
            None if end_step is None else check_int(end_step, "end_step", 1)
        )
        self.penalty = check_non_negative(penalty, "penalty")
        self.penalty_rate = check_positive(penalty_rate, "penalty_rate")
        self.mask_init = check_positive(mask_init, "mask_init")
        self.update_frequency = check_int(
            update_frequency, "update_frequency", 1
        )

    @property
    def default_schedule_frequency(self):
        return self.update_frequency

    def masked_layer_config(self):
        return {
            "learned_mask": True,
            "mask_init": self.mask_init,
            "mask_penalty": self.penalty,
        }

    def _frozen(self, layers):
        return all(
            float(layer.mask_frozen.numpy()) > 0.5 for _, layer in layers
        )

    def learned_sparsity(self, layers):
        total = kept = 0
        for _, layer in layers:
            mask = layer.current_mask()
            total += mask.size
            kept += float(mask.sum())
        return 1.0 - kept / max(total, 1)

    def on_train_batch_end(self, context, step):
        layers = context.layers
        if self._frozen(layers):
            return
        completed = int(step) + 1
        if self.end_step is not None and completed >= self.end_step:
            self.freeze(context)
            return
        if context.sparsity is None:
            return
        if completed % self.update_frequency:
            return
        _, target = context.schedule_at(step)
        current = self.learned_sparsity(layers)
        factor = 1.0 + self.penalty_rate
        penalty = float(layers[0][1].mask_penalty_weight.numpy())
        penalty = penalty * factor if current < target else penalty / factor
        penalty = float(np.clip(penalty, 1e-6, 1e3))
        for _, layer in layers:
            layer.mask_penalty_weight.assign(penalty)
        context.mark_changed()

    def on_epoch_end(self, context):
        # The learned masks move with every step: refresh the statistics.
        context.mark_changed()

    def freeze(self, context):
        layers = context.layers
        if context.sparsity is not None:
            scores = {
                name: np.asarray(layer.kernel_mask_score.numpy(), "float64")
                for name, layer in layers
            }
            masks = context.select(scores, context.final_sparsity())
        else:
            masks = {name: layer.current_mask() for name, layer in layers}
        for name, layer in layers:
            layer.kernel_mask.assign(masks[name])
            layer.mask_frozen.assign(1.0)
            reset_all_slots(context.model.optimizer, layer.kernel_mask_score)
        context.apply_masks(masks)

    def scalars(self, context):
        layers = context.layers
        if not layers:
            return {}
        return {
            "scl/penalty": float(layers[0][1].mask_penalty_weight.numpy()),
            "scl/frozen": float(self._frozen(layers)),
        }

    def histograms(self, context):
        return {
            name: np.asarray(layer.kernel_mask_score.numpy()).reshape(-1)
            for name, layer in context.layers
        }
