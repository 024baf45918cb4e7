"""`count_cost` adapter (private).

Uses `keras_neuronprune.cost.count_cost` when the cost module is present;
until then a minimal stand-in counts parameters per layer and FLOPs of the
common layers (2 x multiply-adds for Conv/Dense, one per output element
for the rest), which is all the pruning controller needs for its
estimates.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class _LayerCost:
    name: str
    class_name: str
    channels_out: int | None
    params: int
    flops: int


@dataclasses.dataclass
class _ModelCost:
    params: int
    flops: int
    layers: list


def count_cost(model):
    try:
        from keras_neuronprune.cost import count_cost as real
    except ImportError:
        real = None
    if real is not None:
        return real(model)
    return _fallback(model)


def _fallback(model):
    from keras_neuronprune.graph import _keras_graph as kg

    functional = kg.as_functional(model)
    rows = []
    for layer in functional.layers:
        params = int(sum(np.prod(w.shape) for w in layer.weights))
        try:
            out = layer.output
        except (AttributeError, ValueError):
            out = None
        shape = tuple(getattr(out, "shape", ()) or ())
        elems = int(np.prod([d for d in shape[1:] if d is not None] or [0]))
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(shape) >= 2:
            spatial = int(np.prod([d for d in shape[1:-1] if d] or [1]))
            flops = 2 * int(np.prod(kernel.shape)) * spatial
        else:
            flops = elems
        channels = shape[-1] if len(shape) >= 2 else None
        rows.append(
            _LayerCost(
                layer.name, type(layer).__name__, channels, params, flops
            )
        )
    return _ModelCost(
        sum(r.params for r in rows), sum(r.flops for r in rows), rows
    )
