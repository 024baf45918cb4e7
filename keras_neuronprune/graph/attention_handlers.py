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
        return (
            cls is kg.keras.layers.MultiHeadAttention
            or cls in self.trusted_classes
            or _qualified(cls) in _TRUSTED_NAMES
        )

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


# ----------------------------------------------------------------------
# Grouped-query attention (keras-hub decoder LMs).
#
# `num_query_heads` query heads share `num_key_value_heads` key/value
# heads: query head q reads key/value head q // (num_query_heads //
# num_key_value_heads). The prunable unit is one key/value group: a kv
# head together with its query heads, so the ratio of query to kv heads
# is kept and the rebuilt layer is the same class with smaller counts.

KV_GROUPS = -4

# Layers known to follow the layout below with an explicit `head_dim`
# config argument (the width of a head does not follow from the number of
# heads), looked up by qualified class name so that keras-hub stays an
# optional dependency.
GQA_CLASSES = {
    "keras_hub.src.models.gemma.gemma_attention.CachedGemmaAttention",
}


class GroupedQueryAttentionHandler(LayerHandler):
    """Handler for grouped-query attention layers (heads in kv groups).

    The layer must hold EinsumDense projections `query_dense` (kernel
    `(num_query_heads, d, head_dim)`), `key_dense` and `value_dense`
    (`(num_key_value_heads, d, head_dim)`) and `output_dense`
    (`(num_query_heads, head_dim, d)`), no biases, take `x` as its first
    argument and return a tensor of the same width. It declares one
    internal group `"<layer path>/kv_groups"` whose channels are the
    key/value heads; keeping one keeps its query heads too.

    Reference:
        Ainslie et al., "GQA: Training Generalized Multi-Query Transformer
        Models from Multi-Head Checkpoints", arXiv:2305.13245.
    """

    weight_names = ("kernel",)

    def propagate(self, layer, site, graph):
        name = f"'{site.path}' ({type(layer).__name__})"
        reason = _gqa_unsupported(layer, site)
        if reason:
            return f"blocked by layer {name}: {reason}"
        ids = graph.channels(site.inputs[0])
        if ids is None:
            return f"blocked by layer {name}: its input has no channel axis"
        graph.add_member(site, "input", "consumer", 0, ids)
        for i, tensor in enumerate(site.inputs[1:], start=1):
            other = graph.channels(tensor)
            graph.block(
                other, f"it is a mask argument of attention layer {name}"
            )
            graph.add_member(site, "input", "channelwise", i, other)
        # The output projection writes the input width back (the layer
        # builds it as `hidden_dim = input width`): same channels.
        graph.set_channels(site.outputs[0], ids, site.path)
        graph.add_member(site, "output", "producer", 0, ids)
        kv = graph.new_channels(site, int(layer.num_key_value_heads), "kv")
        token = _InternalAxis()
        graph.set_channels(token, kv, f"{site.path}/kv_groups")
        graph.add_member(site, INTERNAL, "producer", KV_GROUPS, kv)
        _STATE.setdefault(graph, {}).setdefault(
            id(layer), {"mode": "kv_groups", "kv": kv}
        )
        return None

    def rebuild_layer(self, layer, info, rebuilder):
        from keras_neuronprune.rewrite.attention_rewrite import (
            rebuild_grouped_attention,
        )

        return rebuild_grouped_attention(layer, info, rebuilder)


def _gqa_unsupported(layer, site):
    if not layer.built:
        return "not built"
    if len(site.outputs) != 1:
        return "it returns a cache"
    dense = [getattr(layer, n, None) for n in _GQA_DENSE]
    if any(d is None for d in dense):
        return f"it lacks one of the projections {_GQA_DENSE}"
    known = {id(d.kernel) for d in dense}
    extra = [w.path for w in layer.weights if id(w) not in known]
    if extra:
        return f"it has weights other than the four projection kernels {extra}"
    nq, nkv = int(layer.num_query_heads), int(layer.num_key_value_heads)
    shapes = [tuple(d.kernel.shape) for d in dense]
    if (
        nq % nkv
        or shapes[0][0] != nq
        or shapes[1][0] != nkv
        or shapes[2][0] != nkv
        or shapes[3][0] != nq
        or shapes[3][-1] != shapes[0][1]
    ):
        return f"unexpected projection kernel shapes {shapes}"
    if site.kwargs.get("cache") is not None:
        return "it is called with a cache"
    return None


_GQA_DENSE = ("query_dense", "key_dense", "value_dense", "output_dense")


def flops_of_grouped_attention(layer, input_shapes, output_shapes):
    """FLOPs of a grouped-query attention call (projections and scores)."""
    shape = input_shapes[0]
    tokens = int(np.prod(shape[1:-1]))
    d = shape[-1]
    nq, nkv = int(layer.num_query_heads), int(layer.num_key_value_heads)
    h = int(layer.query_dense.kernel.shape[-1])
    flops = 2 * tokens * d * h * (nq + 2 * nkv)  # q, k, v projections
    flops += tokens * nq * h  # query scaling
    scores = nq * tokens * tokens
    flops += 2 * scores * h + ff.ACTIVATION_FLOPS["softmax"] * scores
    flops += 2 * scores * h  # weighted sum of values
    flops += 2 * tokens * nq * h * output_shapes[0][-1]  # output projection
    return flops


_GQA_HANDLER = GroupedQueryAttentionHandler().with_flops(
    flops_of_grouped_attention
)


def register_library_handlers():
    """Registers the handlers of optional libraries already imported.

    keras-hub is optional, so its attention classes are registered when
    the graph is first read after keras-hub was imported.
    """
    import sys

    from keras_neuronprune.graph.handlers import registered_handler

    for qualified in GQA_CLASSES:
        module, _, name = qualified.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and registered_handler(cls) is None:
            register_builtin_handler(cls, _GQA_HANDLER)
    for qualified in SEGFORMER_CLASSES:
        module, _, name = qualified.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and registered_handler(cls) is None:
            register_builtin_handler(cls, _SEGFORMER_HANDLER)


# ----------------------------------------------------------------------
# Efficient (sequence-reduction) attention of MiT / SegFormer.
#
# keras-hub's `SegFormerMultiheadAttention` projects the tokens with Dense
# `q`, `k`, `v` layers, splits the projections into heads with raw
# reshapes, and (for `sr_ratio > 1`) reads keys and values from a strided
# Conv2D `sr` plus LayerNormalization `norm` over the token grid. Its
# constructor takes `project_dim` and derives the head width from the
# input width, so a layer with fewer heads is no `SegFormerMultiheadAttention`:
# it is rebuilt as the same computation in stock layers (Reshape, Conv2D,
# LayerNormalization, `keras.layers.MultiHeadAttention` with `value` read
# from the reduced sequence).

SEGFORMER_CLASSES = {
    "keras_hub.src.models.mit.mit_layers.SegFormerMultiheadAttention",
}
SEGFORMER_DENSE = ("q", "k", "v", "proj")


class SegFormerAttentionHandler(LayerHandler):
    """Handler for MiT's sequence-reduction attention (heads as channels).

    Declares the internal group `"<layer path>/heads"` (one channel per
    head: its query, key and value columns and its output-projection rows),
    the input as a consumer (of `q`, and of `sr` or `k`/`v`) and the output
    as a producer. The sequence-reduction width (`sr` filters, normalised
    by `norm`) is kept as it is.

    Reference:
        Xie et al., "SegFormer: Simple and Efficient Design for Semantic
        Segmentation with Transformers", arXiv:2105.15203.
    """

    weight_names = ("kernel", "bias", "gamma", "beta")

    def propagate(self, layer, site, graph):
        name = f"'{site.path}' ({type(layer).__name__})"
        reason = _segformer_unsupported(layer, site)
        if reason:
            return f"blocked by layer {name}: {reason}"
        ids = graph.channels(site.inputs[0])
        if ids is None:
            return f"blocked by layer {name}: its input has no channel axis"
        graph.add_member(site, "input", "consumer", 0, ids)
        out = site.outputs[0]
        out_ids = graph.new_channels(site, channel_count(out), 0)
        graph.set_channels(out, out_ids, site.path)
        graph.add_member(site, "output", "producer", 0, out_ids)
        heads = graph.new_channels(site, int(layer.num_heads), "heads")
        token = _InternalAxis()
        graph.set_channels(token, heads, f"{site.path}/heads")
        graph.add_member(site, INTERNAL, "producer", HEADS, heads)
        _STATE.setdefault(graph, {}).setdefault(
            id(layer),
            {
                "mode": "segformer",
                "heads": heads,
                "tokens": site.inputs[0].shape[1],
            },
        )
        return None

    def rebuild_layer(self, layer, info, rebuilder):
        from keras_neuronprune.rewrite.attention_rewrite import (
            rebuild_segformer_attention,
        )

        return rebuild_segformer_attention(layer, info, rebuilder)


def _segformer_unsupported(layer, site):
    if not layer.built:
        return "not built"
    if len(site.inputs) != 1 or len(site.outputs) != 1:
        return "it is not called on one tensor"
    dense = [getattr(layer, n, None) for n in SEGFORMER_DENSE]
    if any(
        not isinstance(d, kg.keras.layers.Dense) or d.bias is None
        for d in dense
    ):
        return f"it lacks one of the Dense projections {SEGFORMER_DENSE}"
    known = {id(w) for d in dense for w in d.weights}
    sr_ratio = int(layer.sr_ratio)
    if sr_ratio > 1:
        known.update(id(w) for w in layer.sr.weights + layer.norm.weights)
    extra = [w.path for w in layer.weights if id(w) not in known]
    if extra:
        return f"it has weights the rewriter does not know {extra}"
    width = int(layer.q.kernel.shape[-1])
    if width % int(layer.num_heads):
        return f"its width {width} is not a multiple of num_heads"
    tokens = site.inputs[0].shape[1]
    if sr_ratio > 1 and (tokens is None or int(tokens**0.5) ** 2 != tokens):
        return (
            f"its token count {tokens} is not a known square (the key/value "
            "grid is rebuilt from it); give the backbone a fixed image_shape"
        )
    return None


def flops_of_segformer_attention(layer, input_shapes, output_shapes):
    """FLOPs of a sequence-reduction attention call (projections, scores)."""
    tokens, d_in = int(input_shapes[0][1]), int(input_shapes[0][-1])
    width = int(layer.q.kernel.shape[-1])
    heads = int(layer.num_heads)
    head_dim = width // heads
    reduced, d_kv = tokens, d_in
    flops = 0
    sr_ratio = int(layer.sr_ratio)
    if sr_ratio > 1:
        reduced = tokens // (sr_ratio * sr_ratio)
        filters = int(layer.sr.kernel.shape[-1])
        flops += 2 * reduced * sr_ratio * sr_ratio * d_in * filters
        flops += reduced * filters  # conv bias
        flops += 8 * reduced * filters  # layer normalisation
        d_kv = filters
    flops += 2 * tokens * d_in * width + tokens * width  # query
    flops += 2 * (2 * reduced * d_kv * width + reduced * width)  # key, value
    flops += tokens * width  # query scaling
    scores = heads * tokens * reduced
    flops += 2 * scores * head_dim + ff.ACTIVATION_FLOPS["softmax"] * scores
    flops += 2 * scores * head_dim
    d_out = int(output_shapes[0][-1])
    flops += 2 * tokens * width * d_out + tokens * d_out  # output projection
    return flops


_SEGFORMER_HANDLER = SegFormerAttentionHandler().with_flops(
    flops_of_segformer_attention
)
