"""Channel-graph handler for multi-head attention (heads as channels).

`keras.layers.MultiHeadAttention` mixes its query, key and value inputs
(consumers) and produces its output (a producer), like a Dense layer; in
between it holds channels that no tensor of the model carries: its heads.
The handler declares those as a channel group of their own, named
`"<layer path>/heads"`, whose channels are whole heads (a keep set keeps or
removes a head's query, key, value and output-projection slices at once),
like Torch-Pruning's `prune_num_heads=True`. With `prune="head_dim"` it
declares instead two groups, `"<path>/qk_dims"` (the `num_heads * key_dim`
query/key columns) and `"<path>/v_dims"` (the `num_heads * value_dim`
value columns and output-projection rows), each partitioned by head, so
every head keeps the same number of dimensions (Torch-Pruning's
`prune_head_dims`).

These internal members have `role="internal"` and `input_index` one of
`HEADS`, `QK_DIMS`, `V_DIMS`; their `channels` are head (or head-dimension)
indices. The layer is rebuilt by
`keras_neuronprune.rewrite.attention_rewrite.rebuild_attention`.
"""

import inspect
import weakref

import numpy as np

from keras_neuronprune.graph import _keras_graph as kg
from keras_neuronprune.graph import flops_formulas as ff
from keras_neuronprune.graph.dependency_graph import channel_count
from keras_neuronprune.graph.handlers import LayerHandler
from keras_neuronprune.graph.handlers import register_builtin_handler
from keras_neuronprune.utils.validation import check_choice

INTERNAL = "internal"
HEADS = -1
QK_DIMS = -2
V_DIMS = -3
PRUNE_MODES = ("heads", "head_dim", "none")

# Call-site facts the rewriter needs, per graph and layer (first call).
_STATE = weakref.WeakKeyDictionary()

# Subclasses known to compute heads independently, like the base class.
_TRUSTED_NAMES = {
    "keras.src.layers.attention.multi_head_attention.MultiHeadAttention",
    "keras_hub.src.layers.modeling.cached_multi_head_attention."
    "CachedMultiHeadAttention",
}


def _qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


class _InternalAxis:
    """Stands for a channel axis that lives inside a layer (no tensor)."""

    __slots__ = ("__weakref__",)


def attention_state(graph, layer):
    """What `MultiHeadAttentionHandler.propagate` recorded for `layer`.

    Returns:
        dict with `mode`, `query`, `key`, `value` (input indices of the
        first call site) and the internal channel ids (`heads`, `qk`,
        `v`), or None if the layer was not handled in `graph`.
    """
    return _STATE.get(graph, {}).get(id(layer))


class MultiHeadAttentionHandler(LayerHandler):
    """Handler for `keras.layers.MultiHeadAttention` and trusted subclasses.

    Args:
        prune: `"heads"` (default: one channel per head), `"head_dim"`
            (per-head dimensions, the same count in every head) or
            `"none"` (heads and head sizes fixed; only the input and output
            channels are pruned with the rest of their groups).
        trusted_classes: extra `MultiHeadAttention` subclasses whose
            attention treats heads independently (no talking heads, no
            rotary mixing of head dimensions). Other subclasses are
            barriers.

    Example:

    ```python
    keras_neuronprune.register_layer_handler(
        keras.layers.MultiHeadAttention,
        MultiHeadAttentionHandler(prune="head_dim"),
    )
    ```

    Reference:
        Michel et al., "Are Sixteen Heads Really Better than One?",
        NeurIPS 2019, arXiv:1905.10650.
    """

    weight_names = ("kernel", "bias")

    def __init__(self, prune="heads", trusted_classes=()):
        self.prune = check_choice(prune, "prune", PRUNE_MODES)
        self.trusted_classes = tuple(trusted_classes)

    def _trusted(self, layer):
        cls = type(layer)
        return cls in self.trusted_classes or _qualified(cls) in _TRUSTED_NAMES

    def _unsupported(self, layer, site):
        name = type(layer).__name__
        if not self._trusted(layer):
            return (
                f"blocked by layer '{site.path}' ({name}): a subclass of "
                "MultiHeadAttention that may mix heads; if its heads are "
                "independent, register it with keras_neuronprune.graph."
                "MultiHeadAttentionHandler(trusted_classes=(...))"
            )
        config = layer.get_config()
        if config.get("use_gate"):
            return f"blocked by layer '{site.path}' ({name}): use_gate=True"
        shape = config.get("output_shape")
        if shape is not None and not isinstance(shape, int) and len(shape) > 1:
            return (
                f"blocked by layer '{site.path}' ({name}): output_shape="
                f"{tuple(shape)} has several axes"
            )
        if len(site.outputs) != 1:
            return (
                f"blocked by layer '{site.path}' ({name}): it returns "
                "attention scores or a cache"
            )
        if not layer.built:
            return f"blocked by layer '{site.path}' ({name}): not built"
        return None

    def propagate(self, layer, site, graph):
        reason = self._unsupported(layer, site)
        if reason:
            return reason
        roles = _argument_roles(layer, site)
        if roles is None:
            return (
                f"blocked by layer '{site.path}' ({type(layer).__name__}): "
                "cannot tell its query, key and value arguments apart"
            )
        index = {}
        for i, tensor in enumerate(site.inputs):
            ids = graph.channels(tensor)
            names = [r for r, t in roles.items() if t is tensor]
            if names and ids is not None:
                graph.add_member(site, "input", "consumer", i, ids)
                for name in names:
                    index.setdefault(name, i)
            elif ids is not None:
                # Masks and caches index sequence positions, not channels.
                graph.block(
                    ids,
                    f"it is a mask or cache argument of attention layer "
                    f"'{site.path}'",
                )
                graph.add_member(site, "input", "channelwise", i, ids)
        if set(index) != {"query", "key", "value"}:
            return (
                f"blocked by layer '{site.path}' ({type(layer).__name__}): "
                "its query, key or value has no channel axis"
            )
        out = site.outputs[0]
        out_ids = graph.new_channels(site, channel_count(out), 0)
        graph.set_channels(out, out_ids, site.path)
        graph.add_member(site, "output", "producer", 0, out_ids)

        n_heads, key_dim = layer.query_dense.kernel.shape[-2:]
        value_dim = layer.value_dense.kernel.shape[-1]
        state = {"mode": self.prune, **index}
        if self.prune == "heads":
            heads = graph.new_channels(site, int(n_heads), "heads")
            self._internal(graph, site, heads, "heads", HEADS)
            state["heads"] = heads
        elif self.prune == "head_dim":
            for key, size, tag, code in (
                ("qk", key_dim, "qk_dims", QK_DIMS),
                ("v", value_dim, "v_dims", V_DIMS),
            ):
                ids = graph.new_channels(site, int(n_heads * size), key)
                self._internal(graph, site, ids, tag, code)
                graph.partition(site, ids, np.arange(len(ids)) // int(size))
                state[key] = ids
        per_graph = _STATE.setdefault(graph, {})
        per_graph.setdefault(id(layer), state)
        return None

    def _internal(self, graph, site, ids, tag, code):
        token = _InternalAxis()
        graph.set_channels(token, ids, f"{site.path}/{tag}")
        graph.add_member(site, INTERNAL, "producer", code, ids)

    def rebuild_layer(self, layer, info, rebuilder):
        """Rebuilds the layer for `thin_model` / `zero_removed_inputs`."""
        from keras_neuronprune.rewrite.attention_rewrite import (
            rebuild_attention,
        )

        return rebuild_attention(layer, info, rebuilder)


def _argument_roles(layer, site):
    """`{"query": t, "value": t, "key": t}` from the call's arguments."""
    try:
        bound = inspect.signature(layer.call).bind(*site.args, **site.kwargs)
    except TypeError:
        return None
    args = bound.arguments
    query, value = args.get("query"), args.get("value")
    key = args.get("key")
    if key is None:
        key = value
    if args.get("cache") is not None:
        return None
    if not all(isinstance(t, kg.keras.KerasTensor) for t in (query, value)):
        return None
    return {"query": query, "value": value, "key": key}


register_builtin_handler(
    kg.keras.layers.MultiHeadAttention,
    MultiHeadAttentionHandler().with_flops(ff.multi_head_attention_flops),
)
