"""`SnipMethod`: connection sensitivity at initialisation (SNIP)."""

import keras
import numpy as np

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.utils.validation import check_int


def snip_scores(model, layers, batches, loss):
    """Normalised connection sensitivities `|w * dL/dw| / sum`.

    `g_j = dL(c * w)/dc_j` at `c = 1` equals `w_j * dL/dw_j`, so the score is
    computed from the kernel gradient. Scores are summed over `batches`
    (one batch in the paper) and normalised by their sum over all the
    masked kernels.

    Args:
        model: the model (masks all ones).
        layers: `[(name, layer)]` of weight-masked layers.
        batches: list of `(x, y)`.
        loss: a callable loss.

    Returns:
        dict name -> float64 array of the kernel's shape, summing to 1.
    """
    from keras_neuronprune.utils.gradients import loss_and_gradients

    variables = [layer.kernel_variable for _, layer in layers]
    totals = [np.zeros(tuple(v.shape), "float64") for v in variables]
    for x, y in batches:
        _, grads = loss_and_gradients(model, variables, x, y, loss)
        for total, variable, grad in zip(totals, variables, grads):
            total += np.abs(np.asarray(variable.numpy()) * grad)
    norm = sum(float(t.sum()) for t in totals)
    if norm <= 0 or not np.isfinite(norm):
        raise ValueError(
            "SNIP scores are all zero or not finite (the loss does not "
            "depend on the masked kernels for this batch, or it is NaN). "
            "Check `data` and `loss`."
        )
    return {name: t / norm for (name, _), t in zip(layers, totals)}


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class SnipMethod(BaseMethod):
    """Single-shot pruning before training by connection sensitivity.

    At `prune_weights` time, one batch of `data` (`num_batches` batches if
    set) gives `s_j = |w_j * dL/dw_j|`, normalised over all masked weights;
    the global top `(1 - sparsity)` fraction is kept (`distribution=
    "global"`, the paper's choice; `"uniform"` and `"erk"` rank per layer)
    and the mask then stays fixed while the sparse network trains. Only
    kernels are pruned: the official code also scores biases, which this
    library never masks.

    Args:
        num_batches: batches of `data` summed into the scores (1).

    Raises:
        ValueError: if `num_batches` is not an int >= 1.

    Example:
    ```python
    method = SnipMethod(num_batches=2)  # sums the scores of two batches
    ```

    Reference:
        Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on
        Connection Sensitivity", arXiv:1810.02340.
    """

    name = "snip"
    needs_data = True
    data_purpose = "compute its sensitivities at initialisation"
    needs_loss = True
    uses_schedule = False
    default_distribution = "global"

    def __init__(self, num_batches=1):
        super().__init__()
        self.num_batches = check_int(num_batches, "num_batches", 1)

    def initialize(self, context):
        batches = context.batches(self.num_batches)
        scores = snip_scores(
            context.model, context.layers, batches, context.loss()
        )
        self.last_scores = scores
        context.apply_masks(context.select(scores, context.sparsity))
