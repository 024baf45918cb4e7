"""Thinning (and zeroing) of `MultiHeadAttention` layers.

Kernel layout of a built `MultiHeadAttention` (any query rank, one output
axis): query/key `(d_in, heads, key_dim)`, value `(d_in, heads,
value_dim)`, biases `(heads, dim)`, output projection `(heads, value_dim,
d_out)` with bias `(d_out,)`. A removed head takes its slice along the
heads axis of all four kernels; a removed query/key dimension takes the
matching columns of query and key; a removed value dimension takes the
value columns and the output rows. Input channels are rows of the
projection that reads them, output channels the last axis of the output
projection.

Removing key dimensions would change the attention scale
`1 / sqrt(key_dim)`; the query projection is multiplied by
`sqrt(new_key_dim / key_dim)` so the thin layer computes exactly what the
zeroed layer computes.
"""

import keras
import numpy as np

from keras_neuronprune.graph.attention_handlers import attention_state
from keras_neuronprune.graph.handlers import take
from keras_neuronprune.graph.handlers import zero


def _projections(layer):
    return {
        "query": layer.query_dense,
        "key": layer.key_dense,
        "value": layer.value_dense,
        "output": layer.output_dense,
    }


def _arrays(layer):
    """`{(projection, "kernel" | "bias"): array}` and the variable order."""
    arrays, order = {}, {}
    for name, dense in _projections(layer).items():
        for short in ("kernel", "bias"):
            variable = getattr(dense, short, None)
            if variable is None:
                continue
            arrays[(name, short)] = np.asarray(variable.numpy())
            order[id(variable)] = (name, short)
    missing = [w.path for w in layer.weights if id(w) not in order]
    if missing:
        raise ValueError(
            f"Attention layer '{layer.name}' has weights the rewriter does "
            f"not know: {missing}"
        )
    return arrays, [order[id(w)] for w in layer.weights]


def _columns(array, keep, heads_axis):
    """Slices the flattened (heads, dim) axes starting at `heads_axis`."""
    if keep is None:
        return array
    shape = array.shape
    flat = array.reshape(shape[:heads_axis] + (-1,) + shape[heads_axis + 2 :])
    flat = take(flat, keep, heads_axis)
    n_heads = shape[heads_axis]
    return flat.reshape(
        shape[:heads_axis] + (n_heads, -1) + shape[heads_axis + 2 :]
    )


def _zero_columns(array, keep, heads_axis):
    if keep is None:
        return array
    shape = array.shape
    flat = array.reshape(shape[:heads_axis] + (-1,) + shape[heads_axis + 2 :])
    return zero(flat, keep, heads_axis).reshape(shape)


def _masks(layer, info, rebuilder):
    graph = rebuilder.graph
    state = attention_state(graph, layer)

    def keep(ids):
        return graph.tensor_keep(ids, rebuilder.kept)

    masks = {
        name: keep(info.in_ids[state[name]])
        for name in ("query", "key", "value")
    }
    masks["output"] = keep(info.out_ids[0])
    for key in ("heads", "qk", "v"):
        masks[key] = keep(state.get(key))
    return masks


def rebuild_attention(layer, info, rebuilder):
    """Returns `(new_layer, new_weight_values)` for the rebuilder.

    Args:
        layer: the original, built `MultiHeadAttention`.
        info: its `LayerInfo` (first call site's channel ids).
        rebuilder: the `Rebuilder` (its `graph`, `kept` labels and `mode`,
            `"thin"` or `"zero"`).
    """
    masks = _masks(layer, info, rebuilder)
    arrays, order = _arrays(layer)
    config = layer.get_config()
    if rebuilder.mode == "zero":
        arrays = _zeroed(arrays, masks)
    else:
        arrays, config = _thinned(layer, arrays, config, masks)
    new = layer.__class__.from_config(config)
    return new, [arrays[key] for key in order]


def _zeroed(arrays, masks):
    for name in ("query", "key", "value"):
        key = (name, "kernel")
        arrays[key] = zero(arrays[key], masks[name], 0)
    heads = masks["heads"]
    if heads is not None:
        arrays[("output", "kernel")] = zero(
            arrays[("output", "kernel")], heads, 0
        )
    if masks["qk"] is not None:
        # The query . key product is the consumer of the q/k dimensions.
        arrays[("query", "kernel")] = _zero_columns(
            arrays[("query", "kernel")], masks["qk"], 1
        )
        if ("query", "bias") in arrays:
            arrays[("query", "bias")] = _zero_columns(
                arrays[("query", "bias")], masks["qk"], 0
            )
    if masks["v"] is not None:
        arrays[("output", "kernel")] = _zero_columns(
            arrays[("output", "kernel")], masks["v"], 0
        )
    return arrays


def _thinned(layer, arrays, config, masks):
    d_query = arrays[("query", "kernel")].shape[0]
    n_heads, key_dim = arrays[("query", "kernel")].shape[1:]
    value_dim = arrays[("value", "kernel")].shape[-1]
    d_out = arrays[("output", "kernel")].shape[-1]
    for name in ("query", "key", "value"):
        key = (name, "kernel")
        arrays[key] = take(arrays[key], masks[name], 0)
    heads = masks["heads"]
    if heads is not None:
        for name in ("query", "key", "value"):
            arrays[(name, "kernel")] = take(arrays[(name, "kernel")], heads, 1)
            if (name, "bias") in arrays:
                arrays[(name, "bias")] = take(arrays[(name, "bias")], heads, 0)
        arrays[("output", "kernel")] = take(
            arrays[("output", "kernel")], heads, 0
        )
        n_heads = int(heads.sum())
    if masks["qk"] is not None:
        new_key_dim = int(masks["qk"].sum()) // n_heads
        factor = np.sqrt(new_key_dim / key_dim)
        for name in ("query", "key"):
            arrays[(name, "kernel")] = _columns(
                arrays[(name, "kernel")], masks["qk"], 1
            )
            if (name, "bias") in arrays:
                arrays[(name, "bias")] = _columns(
                    arrays[(name, "bias")], masks["qk"], 0
                )
        arrays[("query", "kernel")] = arrays[("query", "kernel")] * factor
        if ("query", "bias") in arrays:
            arrays[("query", "bias")] = arrays[("query", "bias")] * factor
        key_dim = new_key_dim
    if masks["v"] is not None:
        arrays[("value", "kernel")] = _columns(
            arrays[("value", "kernel")], masks["v"], 1
        )
        if ("value", "bias") in arrays:
            arrays[("value", "bias")] = _columns(
                arrays[("value", "bias")], masks["v"], 0
            )
        arrays[("output", "kernel")] = _columns(
            arrays[("output", "kernel")], masks["v"], 0
        )
        value_dim = int(masks["v"].sum()) // n_heads
    out = masks["output"]
    arrays[("output", "kernel")] = take(arrays[("output", "kernel")], out, -1)
    if ("output", "bias") in arrays:
        arrays[("output", "bias")] = take(arrays[("output", "bias")], out, -1)
    config["num_heads"] = int(n_heads)
    config["key_dim"] = int(key_dim)
    config["value_dim"] = int(value_dim)
    new_out = int(out.sum()) if out is not None else int(d_out)
    new_query = (
        int(masks["query"].sum()) if masks["query"] is not None else d_query
    )
    if config.get("output_shape") is not None or new_out != new_query:
        config["output_shape"] = new_out
    for key, array in arrays.items():
        arrays[key] = array.astype(layer.query_dense.kernel.dtype, copy=False)
    return arrays, config


def rebuild_grouped_attention(layer, info, rebuilder):
    """`(new_layer, weights)` for a grouped-query attention layer.

    A removed kv group takes its key/value heads (axis 0 of their
    kernels) and its query heads (axis 0 of the query kernel and of the
    output kernel); removed input channels are rows (axis 1) of the
    q/k/v kernels and the last axis of the output kernel. Where the query
    scale depends on the number of query heads
    (`query_head_dim_normalize=False`: `1 / sqrt(hidden_dim //
    num_query_heads)`), the query kernel is rescaled so the thin layer
    computes what the zeroed layer computes.
    """
    graph = rebuilder.graph
    state = attention_state(graph, layer)
    channels = graph.tensor_keep(info.in_ids[0], rebuilder.kept)
    kv = graph.tensor_keep(state["kv"], rebuilder.kept)
    query, key, value, output = (
        np.asarray(d.kernel.numpy())
        for d in (
            layer.query_dense,
            layer.key_dense,
            layer.value_dense,
            layer.output_dense,
        )
    )
    config = layer.get_config()
    nq, nkv = int(layer.num_query_heads), int(layer.num_key_value_heads)
    if rebuilder.mode == "zero":
        query, key, value = (zero(a, channels, 1) for a in (query, key, value))
        if kv is not None:
            output = zero(output, np.repeat(kv, nq // nkv), 0)
    else:
        query, key, value = (take(a, channels, 1) for a in (query, key, value))
        output = take(output, channels, -1)
        if kv is not None:
            q_keep = np.repeat(kv, nq // nkv)
            query, output = take(query, q_keep, 0), take(output, q_keep, 0)
            key, value = take(key, kv, 0), take(value, kv, 0)
            new_nq, new_nkv = int(q_keep.sum()), int(kv.sum())
            if not config.get("query_head_dim_normalize", True):
                d = layer.query_dense.kernel.shape[1]
                new_d = d if channels is None else int(channels.sum())
                old = 1 / np.sqrt(d // nq)
                new = 1 / np.sqrt(new_d // new_nq)
                query = query * (old / new)
            config["num_query_heads"] = new_nq
            config["num_key_value_heads"] = new_nkv
    new_layer = layer.__class__.from_config(config)
    dtype = layer.query_dense.kernel.dtype
    order = {
        id(d.kernel): a
        for d, a in zip(
            (
                layer.query_dense,
                layer.key_dense,
                layer.value_dense,
                layer.output_dense,
            ),
            (query, key, value, output),
        )
    }
    values = [order[id(w)].astype(dtype, copy=False) for w in layer.weights]
    return new_layer, values


def rebuild_segformer_attention(layer, info, rebuilder):
    """`(new_layer, weights)` for MiT's sequence-reduction attention.

    The new layer is a small functional model of stock layers that computes
    what `SegFormerMultiheadAttention` computes: the `q`, `k`, `v` and
    `proj` Dense kernels become the `(d, heads, head_dim)` kernels of a
    `keras.layers.MultiHeadAttention` whose query is the input and whose
    key and value are the input (`sr_ratio == 1`) or the tokens reduced by
    the `sr` convolution and `norm`. Removed heads are cut (or, zeroing,
    their output rows zeroed) as for `MultiHeadAttention`; removed input
    channels are rows of `q` and of `sr` (or `k`, `v`).
    """
    graph = rebuilder.graph
    state = attention_state(graph, layer)

    def keep(ids):
        return graph.tensor_keep(ids, rebuilder.kept)

    sr_ratio = int(layer.sr_ratio)
    heads = int(layer.num_heads)
    in_keep = keep(info.in_ids[0])
    masks = {
        "query": in_keep,
        "key": in_keep if sr_ratio == 1 else None,
        "value": in_keep if sr_ratio == 1 else None,
        "output": keep(info.out_ids[0]),
        "heads": keep(state["heads"]),
        "qk": None,
        "v": None,
    }
    arrays = _segformer_arrays(layer, heads)
    d_in = arrays[("query", "kernel")].shape[0]
    head_dim = arrays[("query", "kernel")].shape[-1]
    config = {
        "name": f"{layer.name}_mha",
        "num_heads": heads,
        "key_dim": int(head_dim),
        "value_dim": int(head_dim),
        "dropout": float(layer.dropout.rate),
        "output_shape": int(arrays[("output", "kernel")].shape[-1]),
    }
    conv = None
    if sr_ratio > 1:
        conv = np.asarray(layer.sr.kernel.numpy())
    if rebuilder.mode == "zero":
        arrays = _zeroed(arrays, masks)
        if conv is not None:
            conv = zero(conv, in_keep, 2)
    else:
        shim = _KernelDtype(layer.q.kernel.dtype)
        arrays, config = _thinned(shim, arrays, config, masks)
        if conv is not None:
            conv = take(conv, in_keep, 2)
            d_in = conv.shape[2]
        elif in_keep is not None:
            d_in = int(in_keep.sum())
    tokens = int(state["tokens"])
    x = keras.Input((tokens, int(d_in)), name=f"{layer.name}_input")
    kv = x
    extra = {}
    if sr_ratio > 1:
        side = int(round(tokens**0.5))
        filters = int(layer.sr.kernel.shape[-1])
        sr = keras.layers.Conv2D.from_config(layer.sr.get_config())
        norm = keras.layers.LayerNormalization.from_config(
            layer.norm.get_config()
        )
        kv = keras.layers.Reshape((side, side, int(d_in)))(x)
        kv = keras.layers.Reshape((-1, filters))(sr(kv))
        kv = norm(kv)
        extra[id(sr.kernel)] = conv
        extra[id(sr.bias)] = np.asarray(layer.sr.bias.numpy())
        extra[id(norm.gamma)] = np.asarray(layer.norm.gamma.numpy())
        extra[id(norm.beta)] = np.asarray(layer.norm.beta.numpy())
    attention = keras.layers.MultiHeadAttention(**config)
    y = attention(x, kv, kv)
    y = keras.layers.Dropout(float(layer.proj_drop.rate))(y)
    new = keras.Model(x, y, name=layer.name)
    for name, dense in _projections(attention).items():
        extra[id(dense.kernel)] = arrays[(name, "kernel")]
        extra[id(dense.bias)] = arrays[(name, "bias")]
    dtype = layer.q.kernel.dtype
    return new, [extra[id(w)].astype(dtype, copy=False) for w in new.weights]


class _KernelDtype:
    """Stands for an attention layer where `_thinned` reads the dtype."""

    def __init__(self, dtype):
        self.query_dense = self
        self.kernel = self
        self.dtype = dtype


def _segformer_arrays(layer, heads):
    """The Dense weights of `layer` in `MultiHeadAttention`'s layout."""
    arrays = {}
    for name, short in zip(
        ("query", "key", "value", "output"), ("q", "k", "v", "proj")
    ):
        dense = getattr(layer, short)
        kernel = np.asarray(dense.kernel.numpy())
        bias = np.asarray(dense.bias.numpy())
        if name == "output":
            kernel = kernel.reshape((heads, -1, kernel.shape[-1]))
        else:
            kernel = kernel.reshape(kernel.shape[:1] + (heads, -1))
            bias = bias.reshape((heads, -1))
        arrays[(name, "kernel")] = kernel
        arrays[(name, "bias")] = bias
    return arrays
