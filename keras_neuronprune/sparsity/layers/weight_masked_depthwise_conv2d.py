"""`WeightMaskedDepthwiseConv2D`: `DepthwiseConv2D` with a kernel mask."""

import keras

from keras_neuronprune.sparsity.layers.base_weight_masked import (
    WeightMaskedMixin,
)
from keras_neuronprune.sparsity.layers.base_weight_masked import (
    depthwise_masked_call,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightMaskedDepthwiseConv2D(
    WeightMaskedMixin, keras.layers.DepthwiseConv2D
):
    """A `keras.layers.DepthwiseConv2D` whose kernel is multiplied by a mask.

    It takes every argument of `keras.layers.DepthwiseConv2D` plus the mask
    options below, and computes exactly what `DepthwiseConv2D` computes with the
    kernel `kernel * mask`. The mask is a non-trainable weight
    (`kernel_mask`, 1 = keep, 0 = pruned) that
    `keras_neuronprune.sparsity.prune_weights` creates and its controller
    updates; with `learned_mask=True` the mask is learned instead
    (`step(kernel_mask_score)` with a straight-through gradient, see
    `WeightMaskedMixin`). `keras_neuronprune.sparsity.strip_weight_pruning`
    turns it back into a plain `DepthwiseConv2D` with exact zeros.

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
        **kwargs: the arguments of `keras.layers.DepthwiseConv2D`.

    Example:
    ```python
    layer = keras_neuronprune.sparsity.layers.WeightMaskedDepthwiseConv2D(
        kernel_size=3
    )
    ```

    Reference:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", arXiv:1506.02626 (kernel x mask formulation).
    """

    parent_class = keras.layers.DepthwiseConv2D
    num_output_axes = 2

    def _masked_call(self, inputs, kernel):
        return depthwise_masked_call(self, inputs, kernel)
