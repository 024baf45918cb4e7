"""`WeightMaskedDense`: `Dense` with a kernel mask."""

import keras
from keras import ops

from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedDense(WeightMaskedMixin, keras.layers.Dense):
    """A `keras.layers.Dense` whose kernel is multiplied by a mask.

    It takes every argument of `keras.layers.Dense` plus the mask
    options below, and computes exactly what `Dense` computes with the
    kernel `kernel * mask`. The mask is a non-trainable weight
    (`kernel_mask`, 1 = keep, 0 = pruned) that
    `keras_neuronprune.sparsity.prune_weights` creates and its controller
    updates; with `learned_mask=True` the mask is learned instead
    (`step(kernel_mask_score)` with a straight-through gradient, see
    `WeightMaskedMixin`). `keras_neuronprune.sparsity.strip_weight_pruning`
    turns it back into a plain `Dense` with exact zeros.

    Args:
        learned_mask: learn the mask (Sparse Connectivity Learning) instead
            of holding a fixed one.
        mask_init: initial value of the learned mask scores (a connection
            is kept while its score is > 0).
        mask_penalty: initial weight of the connection-count penalty
            (its gradient is added to the mask scores') when
            `learned_mask=True`.
        normalize_mask_gradients: divide the mask-score gradients of every
            output feature by their root mean square.
        **kwargs: the arguments of `keras.layers.Dense`.

    Example:
    ```python
    layer = keras_neuronprune.sparsity.layers.WeightMaskedDense(
        units=64
    )
    ```

    Reference:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", arXiv:1506.02626 (kernel x mask formulation).
    """

    parent_class = keras.layers.Dense
    num_output_axes = 1

    def _masked_call(self, inputs, kernel):
        outputs = ops.matmul(inputs, kernel)
        return self._bias_and_activation(outputs, self.units)
