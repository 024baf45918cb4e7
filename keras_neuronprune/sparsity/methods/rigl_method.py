"""`RigLMethod`: dynamic sparse training (drop by |w|, grow by |grad|)."""

import math

import keras
import numpy as np

from keras_neuronprune.sparsity._selection import num_pruned
from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.base_method import required_end_step
from keras_neuronprune.utils.validation import check_choice
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


def cosine_drop_fraction(step, initial, end_step):
    """`f(t) = initial / 2 * (1 + cos(pi * min(t, T) / T))`."""
    t = min(float(step), float(end_step))
    return 0.5 * initial * (1.0 + math.cos(math.pi * t / float(end_step)))


def rigl_update(mask, kernel, grad, drop_fraction):
    """One RigL mask update of one layer, as in the authors' TF2 code.

    `k = floor(drop_fraction * active)` active weights with the smallest
    `|w|` are dropped; then the `k` connections with the largest `|grad|`
    among those not kept are grown (a just-dropped connection may be grown
    back, keeping its weight, like `reinit_when_same=False`).

    Args:
        mask: 0/1 array.
        kernel: the kernel (pruned entries are 0).
        grad: dense loss gradient w.r.t. the effective kernel.
        drop_fraction: fraction of the active weights to replace.

    Returns:
        `(new_mask, grown, k)`: the new mask, the 0/1 array of connections
        that were inactive and are now active, and the number dropped (and
        grown).
    """
    flat_mask = mask.reshape(-1)
    n_total = flat_mask.size
    n_active = int(flat_mask.sum())
    k = int(n_active * float(drop_fraction))
    drop_score = np.abs(kernel.reshape(-1) * flat_mask).astype("float64")
    drop_score[flat_mask == 0] = -np.inf
    order = np.argsort(-drop_score, kind="stable")
    kept = np.zeros(n_total, "float32")
    kept[order[: n_active - k]] = 1.0
    grow_score = np.abs(grad.reshape(-1)).astype("float64")
    grow_score[kept == 1] = -np.inf
    order = np.argsort(-grow_score, kind="stable")
    grown_any = np.zeros(n_total, "float32")
    grown_any[order[:k]] = 1.0
    new_mask = kept + grown_any
    grown = grown_any * (1.0 - flat_mask)
    return new_mask.reshape(mask.shape), grown.reshape(mask.shape), k


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class RigLMethod(BaseMethod):
    """Rigged Lottery: sparse from the start, connections move during training.

    At `prune_weights` time every layer gets a random mask with its ERK
    sparsity (`distribution="erk"`, or `"uniform"`). Every
    `update_frequency` (ΔT) optimizer steps up to `end_step` (T_end), each
    layer drops the `k = floor(f(t) * active)` active weights of smallest
    magnitude and grows the `k` inactive connections with the largest dense
    gradient `|dL/dW|` (one batch of `data`); the drop fraction decays as
    `f(t) = drop_fraction / 2 * (1 + cos(pi t / T_end))` (or stays
    constant). Grown weights start at 0 and their optimizer slots are
    reset, so the number of weights is constant.

    The dense gradient is taken w.r.t. the effective kernel `W * M`: the
    masks are set to 1 for the gradient pass only, which does not change
    the forward pass because pruned weights are stored as exact zeros.

    Args:
        end_step: the last update step (T_end, required; the paper uses
            75% of training).
        drop_fraction: initial fraction of active weights replaced per
            update (alpha), in (0, 1) (0.3).
        drop_fraction_decay: `"cosine"` (default) or `"constant"`.
        update_frequency: steps between mask updates (Delta T, 100).
        seed: seed of the random initial masks (None: a fresh draw).

    Raises:
        ValueError: without `end_step`, or for an argument out of range.

    Example:
    ```python
    pruned = keras_neuronprune.sparsity.prune_weights(
        model, method=RigLMethod(end_step=3000, drop_fraction=0.3),
        sparsity=0.9, data=train_ds)
    ```

    Reference:
        Evci et al., "Rigging the Lottery: Making All Tickets Winners",
        arXiv:1911.11134 (google-research/rigl, rigl_tf2/mask_updaters.py).
    """

    name = "rigl"
    needs_data = True
    data_purpose = "compute the gradients that decide regrowth"
    needs_loss = True
    uses_schedule = False
    default_distribution = "erk"
    distributions = ("erk", "uniform")
    supports_patterns = False

    def __init__(
        self,
        end_step=None,
        drop_fraction=0.3,
        drop_fraction_decay="cosine",
        update_frequency=100,
        seed=None,
    ):
        super().__init__()
        self.end_step = required_end_step(
            end_step, self.name, "mask updates stop, T_end"
        )
        self.drop_fraction = check_fraction(
            drop_fraction, "drop_fraction", include_zero=False
        )
        self.drop_fraction_decay = check_choice(
            drop_fraction_decay, "drop_fraction_decay", ("cosine", "constant")
        )
        self.update_frequency = check_int(
            update_frequency, "update_frequency", 1
        )
        self.seed = None if seed is None else check_int(seed, "seed", 0)
        self.last_update = {}

    def initialize(self, context):
        rng = np.random.default_rng(self.seed)
        shapes = {
            name: tuple(layer.kernel_mask.shape)
            for name, layer in context.layers
        }
        sparsities = context.layer_sparsities(shapes, context.sparsity)
        masks = {}
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            flat = np.ones(size, "float32")
            flat[
                rng.permutation(size)[: num_pruned(size, sparsities[name])]
            ] = 0
            masks[name] = flat.reshape(shape)
        context.apply_masks(masks)

    def drop_fraction_at(self, step):
        if self.drop_fraction_decay == "constant":
            return self.drop_fraction
        return cosine_drop_fraction(step, self.drop_fraction, self.end_step)

    def is_update_step(self, completed_steps):
        return (
            completed_steps > 0
            and completed_steps % self.update_frequency == 0
            and completed_steps <= self.end_step
        )

    def dense_gradients(self, context):
        from keras_neuronprune.utils.gradients import loss_and_gradients

        model, layers = context.model, context.layers
        ((x, y),) = context.batches(1)
        saved = [np.asarray(layer.kernel_mask.numpy()) for _, layer in layers]
        for (_, layer), mask in zip(layers, saved):
            layer.kernel_mask.assign(np.ones(mask.shape, mask.dtype))
        try:
            variables = [layer.kernel_variable for _, layer in layers]
            _, grads = loss_and_gradients(
                model, variables, x, y, context.loss()
            )
        finally:
            for (_, layer), mask in zip(layers, saved):
                layer.kernel_mask.assign(mask)
        return grads

    def on_train_batch_end(self, context, step):
        completed = int(step) + 1
        if not self.is_update_step(completed):
            return
        fraction = self.drop_fraction_at(completed)
        grads = self.dense_gradients(context)
        masks, grown, self.last_update = {}, {}, {}
        for (name, layer), grad in zip(context.layers, grads):
            old = layer.current_mask()
            new, new_connections, k = rigl_update(
                old, layer.masked_kernel(), grad, fraction
            )
            masks[name], grown[name] = new, new_connections
            self.last_update[name] = {
                "dropped": k,
                "grown": k,
                "active_before": int(old.sum()),
                "active_after": int(new.sum()),
            }
        self.last_drop_fraction = fraction
        context.apply_masks(masks, reset=grown)

    def scalars(self, context):
        fraction = getattr(self, "last_drop_fraction", None)
        return {} if fraction is None else {"rigl/drop_fraction": fraction}
