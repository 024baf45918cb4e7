"""Per-head (and per-head-dimension) weight norms of attention layers.

The heads of a `MultiHeadAttention` form a channel group whose members have
`role="internal"` (see `keras_neuronprune.graph.attention_handlers`). A
head is scored as a whole: the norm of every query, key and value weight
that produces it (and, with `include_consumers`, of the output-projection
rows that read it), so keep sets built from these scores remove whole
heads, as in Torch-Pruning's grouped head importance.

Reference:
    Michel et al., "Are Sixteen Heads Really Better than One?",
    NeurIPS 2019, arXiv:1905.10650.
"""

import numpy as np

from keras_neuronprune.criteria._layer_utils import effective_weights
from keras_neuronprune.graph.attention_handlers import HEADS
from keras_neuronprune.graph.attention_handlers import INTERNAL
from keras_neuronprune.graph.attention_handlers import QK_DIMS
from keras_neuronprune.graph.attention_handlers import V_DIMS


def _kernel(dense):
    return np.abs(np.asarray(effective_weights(dense)["kernel"], "float64"))


def internal_power_sums(layer, member, p, include_consumers=False):
    """`sum |w|**p` of the weights of each internal position, or None.

    Args:
        layer: the attention layer of `member`.
        member: a `GroupMember` with `role="internal"`.
        p: the norm's power (1 for L1, 2 for L2).
        include_consumers: also count the output-projection rows.

    Returns:
        float64 vector over the member's internal positions (heads, or
        flattened `(head, dim)` pairs), or None when `member` is not an
        internal attention member.
    """
    if member.role != INTERNAL or not hasattr(layer, "query_dense"):
        return None
    query = _kernel(layer.query_dense) ** p  # (d, heads, key_dim)
    key = _kernel(layer.key_dense) ** p
    value = _kernel(layer.value_dense) ** p
    output = _kernel(layer.output_dense) ** p  # (heads, value_dim, d_out)
    if member.input_index == HEADS:
        per_head = (0, 2)
        vector = query.sum(per_head) + key.sum(per_head) + value.sum(per_head)
        if include_consumers:
            vector = vector + output.sum(axis=(1, 2))
        return vector
    if member.input_index == QK_DIMS:
        return (query.sum(axis=0) + key.sum(axis=0)).reshape(-1)
    if member.input_index == V_DIMS:
        vector = value.sum(axis=0).reshape(-1)
        if include_consumers:
            vector = vector + output.sum(axis=2).reshape(-1)
        return vector
    return None
