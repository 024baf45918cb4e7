"""`SclMethod`: masks learned with a straight-through estimator (SCL)."""

import numpy as np

from keras_neuronprune.sparsity._optimizer_slots import reset_all_slots
from keras_neuronprune.sparsity.methods.base_method import BaseMethod


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

    Reference:
        Tang et al., "Automatic Sparse Connectivity Learning for Neural
        Networks", arXiv:2201.05020.
    """

    name = "scl"
    default_distribution = "global"
    distributions = ("global",)
    supports_patterns = False
    learned_mask = True
    default_update_frequency = 10

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

    def on_train_batch_end(self, model, layers, step):
        controller = self.controller
        if self._frozen(layers):
            return
        completed = int(step) + 1
        if controller.end_step is not None and completed >= controller.end_step:
            self.freeze(model, layers)
            return
        if controller.sparsity is None:
            return
        if completed % controller.update_frequency:
            return
        _, target = controller.schedule_at(step)
        current = self.learned_sparsity(layers)
        factor = 1.0 + controller.penalty_rate
        penalty = float(layers[0][1].mask_penalty_weight.numpy())
        penalty = penalty * factor if current < target else penalty / factor
        penalty = float(np.clip(penalty, 1e-6, 1e3))
        for _, layer in layers:
            layer.mask_penalty_weight.assign(penalty)
        controller.mark_changed()

    def freeze(self, model, layers):
        controller = self.controller
        if controller.sparsity is not None:
            scores = {
                name: np.asarray(layer.kernel_mask_score.numpy(), "float64")
                for name, layer in layers
            }
            masks = controller.masks_for(
                layers, scores, controller.final_sparsity
            )
        else:
            masks = {name: layer.current_mask() for name, layer in layers}
        for name, layer in layers:
            layer.kernel_mask.assign(masks[name])
            layer.mask_frozen.assign(1.0)
            reset_all_slots(model.optimizer, layer.kernel_mask_score)
        controller.apply_masks(model, layers, masks)

    def scalars(self, model, layers):
        if not layers:
            return {}
        return {
            "scl/penalty": float(layers[0][1].mask_penalty_weight.numpy()),
            "scl/frozen": float(self._frozen(layers)),
        }

    def histograms(self, model, layers):
        return {
            name: np.asarray(layer.kernel_mask_score.numpy()).reshape(-1)
            for name, layer in layers
        }
