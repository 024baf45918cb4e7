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
