"""Cut points and segments of a functional model, for the segment profiler.

A cut point is a layer whose output alone carries the network on: the
prefix model up to it is self-contained and everything after depends on
that tensor only (the output of a residual block's Add, not its inside).
`tflite_bench.profile` times the prefix models ending at chosen cuts and
differences them into per-segment latencies.
"""

import bisect
import collections

CONV_CLASSES = (
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
)

# Layers a converter / XNNPACK folds into the operator before them (BN into
# the conv weights, activations into the conv's fused activation). Cutting
# between them would time the producer unfused in one prefix and fused in
# the next, so `choose_segments` does not cut there.
FUSED_FOLLOWERS = (
    "BatchNormalization",
    "ReLU",
    "Activation",
    "LeakyReLU",
    "PReLU",
    "ELU",
)
# Explicit padding is folded into the convolution that consumes it.
FUSED_INTO_NEXT = ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")


_Node = collections.namedtuple(
    "_Node", ["name", "index", "operation", "inputs", "outputs"]
)


def _graph_nodes(model):
    """Returns (functional graph, call sites as `_Node`s in graph order)."""
    from keras_neuronprune.graph import _keras_graph

    functional = _keras_graph.as_functional(model)
    seen = {}
    nodes = []
    for site in _keras_graph.call_sites(functional):
        name = site.operation.name
        index = seen.get(name, 0)
        seen[name] = index + 1
        nodes.append(
            _Node(name, index, site.operation, site.inputs, site.outputs)
        )
    return functional, nodes


def _cut_table(model):
    """Returns (nodes, {cut name: (position, output tensor)})."""
    functional, nodes = _graph_nodes(model)
    last_use = {}
    for x in functional.inputs:
        last_use.setdefault(id(x), -1)
    for pos, node in enumerate(nodes):
        for x in node.inputs:
            last_use[id(x)] = pos
    # A model output is consumed "after the last layer": an intermediate
    # tensor that is also an output keeps everything after it from being a
    # cut.
    for x in functional.outputs:
        last_use[id(x)] = len(nodes)
    counts = collections.Counter(node.name for node in nodes)
    live_until = max(
        (last_use.get(id(x), -1) for x in functional.inputs), default=-1
    )
    cuts = {}
    for pos, node in enumerate(nodes):
        is_last = pos == len(nodes) - 1
        if (
            len(node.outputs) == 1
            and counts[node.name] == 1
            and (live_until <= pos or is_last)
        ):
            cuts[node.name] = (pos, node.outputs[0])
        for x in node.outputs:
            live_until = max(live_until, last_use.get(id(x), -1))
    return nodes, cuts


def cut_points(model):
    """Names of the layers whose output alone carries the network on.

    A layer is a cut point of a functional model when, in topological
    order, no tensor produced before it (the model inputs included) is
    consumed after it: the prefix model up to its output is
    self-contained, and the rest of the network depends on that tensor
    only. Inside a residual block nothing is a cut (the block input is
    still needed by the Add); the Add output is. The InputLayer is not
    listed; the last layer always is. Layers with several outputs or
    called more than once (shared layers) are never cuts.

    Args:
        model: a built functional or Sequential `keras.Model`.

    Returns:
        A list of layer names in topological order.

    Raises:
        ValueError: if `model` has no functional graph (subclassed).

    Example:

    ```python
    model = keras.applications.MobileNetV2(weights=None)
    cuts = cut_points(model)  # [..., "block_2_add", "block_3_expand", ...]
    ```
    """
    _, cuts = _cut_table(model)
    return sorted(cuts, key=lambda name: cuts[name][0])


def _top_level_key(row):
    # Rows of a nested model are named "outer/inner"; they belong to the
    # outer call site (Keras forbids "/" in layer names).
    return row.name.split("/")[0], row.call_index


def _segment_of_rows(model, cost, cut_names):
    """Segment index (or None after the last cut) for every cost row."""
    nodes, cuts = _cut_table(model)
    position = {(n.name, n.index): pos for pos, n in enumerate(nodes)}
    cut_positions = [cuts[name][0] for name in cut_names]
    segments = []
    for row in cost.layers:
        key = _top_level_key(row)
        if key not in position:
            key = (key[0], 0)
        if key not in position:
            raise RuntimeError(
                f"Cost row {row.name!r} matches no call site of {model.name!r}."
            )
        i = bisect.bisect_left(cut_positions, position[key])
        segments.append(i if i < len(cut_positions) else None)
    return segments, nodes, cuts


def choose_segments(model, max_segments=16):
    """Picks at most `max_segments` cut points, evenly spread by FLOPs.

    Candidates are the `cut_points` that do not split an operator the
    converter fuses: not before a BatchNormalization or activation layer
    (folded into the conv before it) and not after a ZeroPadding layer
    (folded into the conv after it); the last layer is always a
    candidate. When there are at most `max_segments` candidates all are
    returned. Otherwise, for k = 1..max_segments the candidate whose
    cumulative FLOPs (from `keras_neuronprune.count_cost`, up to and
    including the cut) is closest to k / max_segments of the total is
    chosen; duplicates collapse, so fewer segments may come back. The last
    layer is always included.

    Args:
        model: a built functional or Sequential `keras.Model`.
        max_segments: the most segments (cuts) to return, >= 1.

    Returns:
        A list of cut names in topological order, ending with the last
        layer.

    Raises:
        ValueError: if `max_segments` is not a positive int.
    """
    from keras_neuronprune import count_cost

    if (
        not isinstance(max_segments, int)
        or isinstance(max_segments, bool)
        or max_segments < 1
    ):
        raise ValueError(
            "`max_segments` must be an int >= 1. Received: "
            f"max_segments={max_segments!r}"
        )
    names = cut_points(model)
    cost = count_cost(model)
    segments, nodes, cuts = _segment_of_rows(model, cost, names)
    flops = [0] * len(names)
    for row, seg in zip(cost.layers, segments):
        if seg is not None:
            flops[seg] += row.flops
    cumulative = []
    total = 0
    for f in flops:
        total += f
        cumulative.append(total)
    last = len(names) - 1
    candidates = [
        i
        for i in range(len(names))
        if i == last or _splits_no_fusion(nodes, cuts[names[i]][0])
    ]
    if len(candidates) <= max_segments:
        return [names[i] for i in candidates]
    chosen = {last}
    for k in range(1, max_segments):
        target = total * k / max_segments
        best = min(candidates, key=lambda i: (abs(cumulative[i] - target), i))
        chosen.add(best)
    return [names[i] for i in sorted(chosen)]


def _splits_no_fusion(nodes, pos):
    """Whether cutting after node `pos` keeps converter fusions intact."""
    node = nodes[pos]
    if type(node.operation).__name__ in FUSED_INTO_NEXT:
        return False
    out = node.outputs[0]
    for consumer in nodes[pos + 1 :]:
        if any(x is out for x in consumer.inputs):
            if type(consumer.operation).__name__ in FUSED_FOLLOWERS:
                return False
    return True


def _segment_stats(model, cut_names):
    """Per-segment FLOPs, conv channel range and cut output shape."""
    from keras_neuronprune import count_cost

    cost = count_cost(model)
    segments, nodes, cuts = _segment_of_rows(model, cost, cut_names)
    stats = [
        {"flops": 0, "channels": [], "first_layer": None} for _ in cut_names
    ]
    cut_positions = [cuts[name][0] for name in cut_names]
    for pos, node in enumerate(nodes):
        i = bisect.bisect_left(cut_positions, pos)
        if i < len(stats) and stats[i]["first_layer"] is None:
            stats[i]["first_layer"] = node.name
    for row, seg in zip(cost.layers, segments):
        if seg is None:
            continue
        stats[seg]["flops"] += row.flops
        if row.class_name in CONV_CLASSES and row.channels_out:
            stats[seg]["channels"].append(row.channels_out)
    for name, s in zip(cut_names, stats):
        s["shape"] = "x".join(str(d) for d in tuple(cuts[name][1].shape)[1:])
    return cost, stats, cuts
