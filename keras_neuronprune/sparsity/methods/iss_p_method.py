"""`IssPMethod`: iterative soft shrinkage, then hard pruning (ISS-P)."""

import keras
import numpy as np

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.base_method import magnitude_scores
from keras_neuronprune.sparsity.methods.base_method import required_end_step
from keras_neuronprune.utils.validation import check_fraction


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class IssPMethod(BaseMethod):
    """Shrinks the smallest weights a little after every step, then prunes.

    After every optimizer step before `end_step` at which the schedule says
    "prune" (every step by default), each layer's lowest-`|w|` fraction
    (the schedule's sparsity, per layer: ISS-P ranks locally) is multiplied
    by `shrink_ratio` instead of being zeroed; the set is re-chosen every
    time, so a shrunk weight that grows again recovers. No mask is applied
    in this phase. At `end_step` the same ranking hard-prunes the layers
    to the final sparsity and the mask stays fixed afterwards (fine-tuning).

    `shrink_ratio` defaults to 0.95, the `--ist_ratio` of the authors'
    published commands (Jiamian-Wang/Iterative-Soft-Shrinkage-SR README);
    0 gives iterative hard thresholding (IHT).

    Args:
        end_step: the step of the hard pruning (required).
        shrink_ratio: factor applied to the smallest weights after every
            step, in [0, 1) (0.95).

    Raises:
        ValueError: without `end_step`, or for an argument out of range.

    Example:
    ```python
    method = IssPMethod(end_step=2000, shrink_ratio=0.9)
    ```

    Reference:
        Wang et al., "Iterative Soft Shrinkage Learning for Efficient Image
        Super-Resolution", ICCV 2023, arXiv:2211.13654.
    """

    name = "iss_p"
    distributions = ("uniform", "erk")
    default_schedule_frequency = 1

    def __init__(self, end_step=None, shrink_ratio=0.95):
        super().__init__()
        self.end_step = required_end_step(
            end_step,
            self.name,
            "soft shrinkage ends and weights are hard-pruned",
        )
        self.shrink_ratio = check_fraction(shrink_ratio, "shrink_ratio")
        self._hard_pruned = False

    def on_train_begin(self, context):
        self._hard_pruned = False

    def _lowest(self, context, sparsity):
        scores = {
            name: magnitude_scores(layer, keep_pruned=False)
            for name, layer in context.layers
        }
        return context.select(scores, sparsity)

    def on_train_batch_end(self, context, step):
        completed = int(step) + 1
        if completed >= self.end_step:
            if not self._hard_pruned:
                self._hard_prune(context)
            return
        should_prune, sparsity = context.schedule_at(step)
        if not should_prune or sparsity <= 0:
            return
        keep = self._lowest(context, sparsity)
        ratio = self.shrink_ratio
        for name, layer in context.layers:
            variable = layer.kernel_variable
            kernel = np.asarray(variable.numpy())
            factor = np.where(keep[name] > 0, 1.0, ratio).astype(kernel.dtype)
            variable.assign(kernel * factor)

    def _hard_prune(self, context):
        # Masks are ones until the hard pruning: any zero means it already
        # happened (e.g. before a BackupAndRestore resume).
        done = any(
            (layer.current_mask() == 0).any() for _, layer in context.layers
        )
        if not done and context.final_sparsity() > 0:
            masks = self._lowest(context, context.final_sparsity())
            context.apply_masks(masks)
        self._hard_pruned = True
