"""Handlers for raw `keras.ops` that move, cut or pad tensors.

A functional graph records `ops.pad(x, ...)`, `ops.split(x, 2, axis=-1)`,
`x[:, 1:]`, `ops.concatenate`, `ops.reshape`, `ops.transpose` and
reductions as operations that are not layers. Each handler below follows
the channel axis (the last one) through such an op: where the op leaves it
alone or maps it (a split on channels hands each output its slice of the
channels), the channels flow on exactly; where the op pads, cuts, reduces
or moves the channel axis, the call is a barrier with its reason. An op
whose thinned version needs other arguments (a reshape to an explicit
channel count) is rebuilt by `rebuild_operation`.
"""

import numpy as np

from keras_neuronprune.graph import _keras_graph as kg
from keras_neuronprune.graph import flops_formulas as ff
from keras_neuronprune.graph.builtin_handlers import ChannelwiseHandler
from keras_neuronprune.graph.builtin_handlers import ConcatenateHandler
from keras_neuronprune.graph.builtin_handlers import MergeHandler
from keras_neuronprune.graph.builtin_handlers import register_rows
from keras_neuronprune.graph.dependency_graph import channel_count
from keras_neuronprune.graph.handlers import LayerHandler


def _members(graph, site):
    for i, t in enumerate(site.inputs):
        graph.add_member(site, "input", "channelwise", i, graph.channels(t))
    for t in site.outputs:
        graph.add_member(site, "output", "channelwise", 0, graph.channels(t))


def _pass_through(graph, site, ids):
    for out in site.outputs:
        if channel_count(out) != len(ids):
            return (
                f"blocked by op '{site.path}' ({type(site.layer).__name__}): "
                "it changes the number of channels"
            )
        graph.set_channels(out, ids, site.path)
    _members(graph, site)
    return None


def _blocked(site, what):
    return f"blocked by op '{site.path}' ({type(site.layer).__name__}): {what}"


def _first_input(graph, site):
    """The channel ids of the op's data input (its first tensor)."""
    if not site.inputs:
        return None
    return graph.channels(site.inputs[0])


def _axes(axis, rank):
    if axis is None:
        return set(range(rank))
    if isinstance(axis, (list, tuple)):
        return {int(a) % rank for a in axis}
    return {int(axis) % rank}


class PadOpHandler(LayerHandler):
    """`ops.pad`: exact when the channel axis gets no padding."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        rank = len(site.inputs[0].shape)
        widths = [tuple(w) for w in layer.pad_width]
        last = widths[0] if len(widths) == 1 else widths[-1]
        if len(widths) not in (1, rank) or any(int(w) for w in last):
            return _blocked(site, f"it pads the channel axis ({widths})")
        return _pass_through(graph, site, ids)


class SplitOpHandler(LayerHandler):
    """`ops.split`: on the channel axis, each output gets its slice.

    The thinned model splits at the indices recomputed from the kept
    channels (sections may then differ in size: each is its own group).
    """

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        rank = len(site.inputs[0].shape)
        if layer.axis % rank != rank - 1:
            for out in site.outputs:
                graph.set_channels(out, ids, site.path)
            _members(graph, site)
            return None
        bounds = _split_bounds(layer.indices_or_sections, len(ids))
        if bounds is None:
            return _blocked(site, "uneven split of the channels")
        if len(bounds) - 1 != len(site.outputs):
            return _blocked(site, "unexpected number of outputs")
        for out, a, b in zip(site.outputs, bounds[:-1], bounds[1:]):
            graph.set_channels(out, ids[a:b], site.path)
        _members(graph, site)
        return None

    def rebuild_operation(self, op, in_keep, out_keep, info):
        keep = in_keep[0]
        rank = len(info.in_shapes[0])
        if keep is None or op.axis % rank != rank - 1:
            return op
        bounds = _split_bounds(op.indices_or_sections, keep.size)
        kept_before = np.concatenate([[0], np.cumsum(keep)])
        indices = [int(kept_before[b]) for b in bounds[1:-1]]
        return type(op)(indices, axis=op.axis)


def _split_bounds(sections, n):
    if isinstance(sections, int):
        if n % sections:
            return None
        return [n // sections * i for i in range(sections + 1)]
    return [0] + [int(i) for i in sections] + [n]


class ConcatenateOpHandler(ConcatenateHandler):
    """`ops.concatenate`: the `Concatenate` layer's rule, plus the cases a
    raw op adds (no channels at all, `axis=None`)."""

    def propagate(self, layer, site, graph):
        ids = [graph.channels(t) for t in site.inputs]
        if any(i is None for i in ids):
            if all(i is None for i in ids) and (
                channel_count(site.outputs[0]) is None
            ):
                return None
            return _blocked(site, "an input without channels")
        if layer.axis is None:
            return _blocked(site, "it flattens its inputs (axis=None)")
        return super().propagate(layer, site, graph)


class ReshapeOpHandler(LayerHandler):
    """`ops.reshape` keeping the channel axis last, or flattening all."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        x, out = site.inputs[0], site.outputs[0]
        newshape = tuple(layer.newshape)
        if (
            len(out.shape) >= 2
            and out.shape[-1] == x.shape[-1]
            and (newshape[-1] in (-1, len(ids)))
            and _same_leading(x, out)
        ):
            return _pass_through(graph, site, ids)
        return _blocked(
            site,
            f"reshape {tuple(x.shape)} -> {tuple(out.shape)} moves or "
            "merges the channel axis",
        )

    def rebuild_operation(self, op, in_keep, out_keep, info):
        keep = out_keep[0]
        newshape = list(op.newshape)
        if keep is None or newshape[-1] == -1:
            return op
        newshape[-1] = int(keep.sum())
        return type(op)(tuple(newshape))


def _same_leading(x, out):
    # The channel axis stays the same axis of the data only if the other
    # axes are regrouped among themselves: their total size (where known)
    # must not absorb channels.
    a = [d for d in tuple(x.shape)[1:-1]]
    b = [d for d in tuple(out.shape)[1:-1]]
    if any(d is None for d in a + b):
        return True
    return int(np.prod(a, dtype=np.int64)) == int(np.prod(b, dtype=np.int64))


class TransposeOpHandler(LayerHandler):
    """`ops.transpose` that keeps the channel axis last."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        rank = len(site.inputs[0].shape)
        axes = layer.axes
        if axes is None or int(axes[-1]) % rank != rank - 1:
            return _blocked(site, f"it moves the channel axis (axes={axes})")
        return _pass_through(graph, site, ids)


class GetItemOpHandler(LayerHandler):
    """`x[...]`: exact when the key leaves the channel axis whole."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        key = site.args[1] if len(site.args) > 1 else site.kwargs.get("key")
        rank = len(site.inputs[0].shape)
        if not _keeps_last_axis(key, rank):
            return _blocked(
                site, f"the index {key!r} cuts or moves the channel axis"
            )
        return _pass_through(graph, site, ids)


def _keeps_last_axis(key, rank):
    if not isinstance(key, (tuple, list)):
        key = (key,)
    key = list(key)
    if any(not isinstance(k, (int, slice, type(None), type(Ellipsis)))
           for k in key):  # fmt: skip
        return False  # a tensor index (gather) or something unknown.
    if Ellipsis in key:
        tail = key[key.index(Ellipsis) + 1 :]
    else:
        used = sum(1 for k in key if k is not None)
        if used < rank:
            return True  # trailing axes, the channel axis among them, stay.
        tail = key[-1:] if key else []
        if key and key[-1] is None:
            return False
    if not tail:
        return True
    if any(k is None for k in tail):
        return False
    return len(tail) == 1 and tail[0] == slice(None)


class SliceOpHandler(LayerHandler):
    """`ops.slice` that takes every channel (constant start 0)."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        start = site.args[1] if len(site.args) > 1 else None
        shape = list(layer.shape)
        n = len(ids)
        start_ok = isinstance(start, (list, tuple)) and start[-1] == 0
        if not start_ok or shape[-1] not in (n, -1):
            return _blocked(site, "it cuts the channel axis")
        return _pass_through(graph, site, ids)

    def rebuild_operation(self, op, in_keep, out_keep, info):
        keep = out_keep[0]
        shape = list(op.shape)
        if keep is None or shape[-1] == -1:
            return op
        shape[-1] = int(keep.sum())
        return type(op)(tuple(shape))


class ReduceOpHandler(LayerHandler):
    """`ops.mean/max/min/sum` over axes other than the channel axis."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        rank = len(site.inputs[0].shape)
        if (rank - 1) in _axes(layer.axis, rank):
            return _blocked(
                site, f"it reduces the channel axis (axis={layer.axis})"
            )
        return _pass_through(graph, site, ids)


class ExpandDimsOpHandler(LayerHandler):
    """`ops.expand_dims` that does not add an axis after the channels."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        out_rank = len(site.outputs[0].shape)
        if (out_rank - 1) in _axes(layer.axis, out_rank):
            return _blocked(site, "it adds an axis after the channels")
        return _pass_through(graph, site, ids)


class SqueezeOpHandler(LayerHandler):
    """`ops.squeeze` of axes other than the channel axis."""

    def propagate(self, layer, site, graph):
        ids = _first_input(graph, site)
        if ids is None:
            return None
        rank = len(site.inputs[0].shape)
        axis = layer.axis
        if axis is None or (rank - 1) in _axes(axis, rank):
            return _blocked(site, f"it may squeeze the channel axis ({axis})")
        return _pass_through(graph, site, ids)


class ElementwiseOpHandler(ChannelwiseHandler):
    """A raw op acting on each element (`ops.clip(x, 0, 6)`, `ops.log`)."""


# FLOP rules of the raw ops, by module and class name. A binary keras.ops
# call is one op per output element, whether its second operand is a
# tensor or a Python number (`x + 3.0`).
_OP_FLOPS = (
    (ff.one_per_element, "numpy", (
        "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
        "Minimum", "Power", "Negative", "Log", "Reciprocal", "Cumsum",
        "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual",
        "LogicalAnd", "LogicalOr", "LogicalNot",
    )),
    (ff.two_per_element, "numpy", ("Clip",)),
    (ff.matmul_op_flops, "numpy", ("Matmul",)),
    (ff.global_pooling_flops, "numpy", ("Mean", "Sum")),
    (ff.zero_flops, "numpy", (
        "Reshape", "Transpose", "ExpandDims", "Squeeze", "Concatenate",
        "Stack", "Split", "GetItem", "Take", "Flip", "Roll", "Pad", "Tile",
        "Repeat", "Ravel", "ZerosLike", "OnesLike", "Tanh", "Exp", "Sqrt",
        "Abs",
    )),
    (ff.zero_flops, "core", ("Cast", "SliceUpdate", "Slice", "StopGradient")),
)  # fmt: skip

# keras.ops activations recorded as graph nodes, e.g. `keras.ops.relu(x)`.
_ACTIVATION_OPS = {
    "Relu": "relu",
    "Relu6": "relu6",
    "LeakyRelu": "leaky_relu",
    "Elu": "elu",
    "Selu": "selu",
    "Celu": "celu",
    "Sigmoid": "sigmoid",
    "LogSigmoid": "log_sigmoid",
    "HardSigmoid": "hard_sigmoid",
    "Silu": "silu",
    "HardSilu": "hard_silu",
    "Gelu": "gelu",
    "Glu": "glu",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "HardTanh": "hard_tanh",
    "HardShrink": "hard_shrink",
    "SoftShrink": "soft_shrink",
    "TanhShrink": "tanh_shrink",
    "Threshold": "threshold",
    "Sparsemax": "sparsemax",
    "SparsePlus": "sparse_plus",
    "SparseSigmoid": "sparse_sigmoid",
    "Squareplus": "squareplus",
}


def _op_rules():
    """`{op class: FLOP rule}` for the raw ops that have one."""
    rules = {}
    for rule, module, names in _OP_FLOPS:
        for cls in kg.ops_classes(module, names).values():
            rules[cls] = rule
    nn = kg.ops_classes("nn", _ACTIVATION_OPS)
    for name, cls in nn.items():
        rules[cls] = ff.activation_op_rule(_ACTIVATION_OPS[name])
    return rules


def _op_handlers():
    """`{op class: channel handler}` for the raw ops the graph follows."""
    merge = MergeHandler()
    channelwise = ChannelwiseHandler()
    found = {op: merge for op in kg.elementwise_binary_ops()}
    found.update({op: channelwise for op in kg.elementwise_unary_ops()})
    shape_ops = kg.shape_ops()
    by_name = {
        "Pad": PadOpHandler(),
        "Split": SplitOpHandler(),
        "Concatenate": ConcatenateOpHandler(),
        "Reshape": ReshapeOpHandler(),
        "Transpose": TransposeOpHandler(),
        "GetItem": GetItemOpHandler(),
        "Slice": SliceOpHandler(),
        "ExpandDims": ExpandDimsOpHandler(),
        "Squeeze": SqueezeOpHandler(),
        "Power": MergeHandler(),
    }
    reduce = ReduceOpHandler()
    for name in ("Mean", "Max", "Min", "Sum"):
        by_name[name] = reduce
    elementwise = ElementwiseOpHandler()
    for name in ("Clip", "Log", "Reciprocal", "StopGradient"):
        by_name[name] = elementwise
    for name, handler in by_name.items():
        if name in shape_ops:
            found[shape_ops[name]] = handler
    return found


def _register_all():
    # One handler copy per (channel handler, rule) pair, shared by its ops;
    # an op with a rule and no channel handler gets FLOPs only.
    handlers = _op_handlers()
    rules = _op_rules()
    flops_only = LayerHandler()
    rows = {}
    for op in list(handlers) + [op for op in rules if op not in handlers]:
        handler = handlers.get(op, flops_only)
        rule = rules.get(op)
        rows.setdefault((id(handler), rule), (handler, rule, []))[2].append(op)
    register_rows(rows.values())


_register_all()
