"""`IssPMethod`: iterative soft shrinkage, then hard pruning (ISS-P)."""

import numpy as np

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.base_method import magnitude_scores


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

    Reference:
        Wang et al., "Iterative Soft Shrinkage Learning for Efficient Image
        Super-Resolution", ICCV 2023, arXiv:2211.13654.
    """

    name = "iss_p"
    distributions = ("uniform", "erk")

    def __init__(self, controller):
        super().__init__(controller)
        self._hard_pruned = False

    def on_train_begin(self, model, layers):
        self._hard_pruned = False

    def _lowest(self, layers, sparsity):
        scores = {
            name: magnitude_scores(layer, keep_pruned=False)
            for name, layer in layers
        }
        return self.controller.masks_for(layers, scores, sparsity)

    def on_train_batch_end(self, model, layers, step):
        controller = self.controller
        completed = int(step) + 1
        if completed >= controller.end_step:
            if not self._hard_pruned:
                self._hard_prune(model, layers)
            return
        should_prune, sparsity = controller.schedule_at(step)
        if not should_prune or sparsity <= 0:
            return
        keep = self._lowest(layers, sparsity)
        ratio = controller.shrink_ratio
        for name, layer in layers:
            variable = layer.kernel_variable
            kernel = np.asarray(variable.numpy())
            factor = np.where(keep[name] > 0, 1.0, ratio).astype(kernel.dtype)
            variable.assign(kernel * factor)

    def _hard_prune(self, model, layers):
        # Masks are ones until the hard pruning: any zero means it already
        # happened (e.g. before a BackupAndRestore resume).
        controller = self.controller
        done = any((layer.current_mask() == 0).any() for _, layer in layers)
        if not done and controller.final_sparsity > 0:
            masks = self._lowest(layers, controller.final_sparsity)
            controller.apply_masks(model, layers, masks)
        self._hard_pruned = True
