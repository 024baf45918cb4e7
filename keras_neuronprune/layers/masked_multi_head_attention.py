"""`MaskedMultiHeadAttention`: `MultiHeadAttention` with a head mask.

Used by the structured-pruning controller in place of
`keras.layers.MultiHeadAttention` while heads are removed during training.
A removed head's slice of the value projection's output is multiplied by
0: every row of the attention softmax sums to 1, so that head's attention
output is then exactly 0, and so is its contribution to the output
projection, which is what removing the head computes (the output
projection's bias does not depend on the heads). Strip with
`layer.to_parent()` (the mask folded into the value projection), then
`keras_neuronprune.thin_model` removes the heads physically.
"""

import weakref

import keras
import numpy as np
from keras import ops

from keras_neuronprune.layers._masking import OUTPUT_MASK
from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._masking import as_mask

HEAD_MASK = "head_mask"


class _HeadMaskedValueProjection(keras.layers.EinsumDense):
    """The value projection of a `MaskedMultiHeadAttention`.

    The `EinsumDense` that `MultiHeadAttention.build` creates becomes an
    instance of this class (same weights, same config): its output
    `(..., heads, value_dim)` is multiplied by the owner's `head_mask` on
    the heads axis. Keras has no public way to hook between the value
    projection and the attention, and the owner's mask cannot be a weight
    of this sublayer (it would change the parent's weight list).
    """

    def call(self, inputs, training=None):
        outputs = super().call(inputs, training=training)
        owner = self._knp_owner()
        mask = ops.cast(owner.head_mask, outputs.dtype)
        return outputs * ops.reshape(mask, (-1, 1))


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class MaskedMultiHeadAttention(
    MaskedLayerMixin, keras.layers.MultiHeadAttention
):
    """`keras.layers.MultiHeadAttention` with a head mask and an output mask.

    Takes the arguments of `keras.layers.MultiHeadAttention`; its config
    is exactly the parent's. After `build` it holds two non-trainable float
    weights, initialised to ones:

    - `head_mask` `(num_heads,)`: multiplied into the value projection's
      output, so a removed head contributes exactly nothing (as if the
      head, its query, key, value and output-projection slices were cut
      out; `keras_neuronprune.thin_model` does that after stripping).
    - `output_mask` `(output_dim,)`: multiplied into the output, so a
      removed output channel is exactly 0.

    The inputs have no mask (the structured-pruning controller gates them
    with `ChannelGate` layers), and there is no element-wise kernel mask
    (`use_kernel_mask=True` is refused).

    Example:

    ```python
    layer = keras_neuronprune.layers.MaskedMultiHeadAttention(
        num_heads=4, key_dim=8)
    y = layer(x, x)
    layer.set_head_mask([1, 0, 1, 1])  # head 1 removed
    ```

    Reference:
        Michel et al., "Are Sixteen Heads Really Better than One?",
        NeurIPS 2019, arXiv:1905.10650.
    """

    parent_class = keras.layers.MultiHeadAttention
    has_input_mask = False
    kernel_name = None
    kernel_axes = {}

    def build(self, query_shape, value_shape, key_shape=None):
        keras.layers.MultiHeadAttention.build(
            self, query_shape, value_shape, key_shape
        )
        self.input_mask = None
        out_channels = int(self.output_dense.kernel.shape[-1])
        self.output_mask = self._ones(OUTPUT_MASK, (out_channels,))
        self.head_mask = self._ones(HEAD_MASK, (int(self.num_heads),))
        value = self.value_dense
        if type(value) is not keras.layers.EinsumDense:
            raise ValueError(
                f"Layer '{self.name}' has a value projection of type "
                f"{type(value).__name__}; MaskedMultiHeadAttention needs "
                "the EinsumDense that MultiHeadAttention builds."
            )
        value.__class__ = _HeadMaskedValueProjection
        # A weak reference: a strong one would make the owner a tracked
        # sublayer of its own sublayer.
        value._knp_owner = weakref.ref(self)

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        outputs = super().call(
            query,
            value,
            key=key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            use_causal_mask=use_causal_mask,
        )
        if return_attention_scores:
            return self._mask_outputs(outputs[0]), outputs[1]
        return self._mask_outputs(outputs)

    def set_head_mask(self, mask):
        """Sets `head_mask` from a 0/1 (or boolean) array of `num_heads`."""
        self._mask_variable(HEAD_MASK).assign(
            as_mask(mask, self.head_mask, "mask")
        )

    def stripped_weights(self):
        """The parent layer's weights with the masks folded in.

        The head mask zeroes the removed heads' value-projection kernel and
        bias slices; the output mask zeroes the output projection's
        columns and bias entries of removed output channels. The result
        loads into `keras.layers.MultiHeadAttention.from_config(
        self.parent_config())` and computes exactly what this layer does.

        Returns:
            A list of NumPy arrays in the parent's weight order.
        """
        heads = np.asarray(self.head_mask.numpy()).reshape(-1, 1)
        outputs = np.asarray(self.output_mask.numpy())
        # Value kernel (d_in, heads, dim) and bias (heads, dim) end on the
        # heads and dim axes; output kernel and bias end on the channels.
        factors = {id(w): heads for w in self.value_dense.weights}
        factors.update({id(w): outputs for w in self.output_dense.weights})
        masks = {id(self.head_mask), id(self.output_mask)}
        stripped = []
        for w in self.weights:
            if id(w) in masks:
                continue
            value = np.array(w.numpy())
            if id(w) in factors:
                value = value * factors[id(w)].astype(value.dtype)
            stripped.append(value)
        return stripped
