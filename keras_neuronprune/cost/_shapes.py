"""Per-call input/output shapes of every operation in a Keras model.

This is the only module of `keras_neuronprune.cost` that touches private
Keras state (`Functional._nodes_by_depth`, `Sequential._functional`,
`Operation._inbound_nodes`, `Node.arguments`). It is meant to move into
`keras_neuronprune/graph/_keras_graph.py`, which keeps all private Keras
access in one place.
"""

import collections

import keras

CallSite = collections.namedtuple(
    "CallSite", ["operation", "path", "input_shapes", "output_shapes"]
)
CallSite.__doc__ = """One call of an operation inside a model graph.

Fields:
    operation: the called `keras.Operation` (usually a `keras.layers.Layer`).
    path: name prefix of enclosing nested models, e.g. `"backbone/"`.
    input_shapes: list of shape tuples of the call's input tensors.
    output_shapes: list of shape tuples of the call's output tensors.
"""


def graph_of(model):
    """Returns the functional graph behind `model`, or None if it has none.

    Functional models are their own graph; a Sequential model keeps one in a
    private attribute once it is built; subclassed models have none.
    """
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if hasattr(model, "_nodes_by_depth") and hasattr(model, "_operations"):
        return model
    return None


def is_nested_graph(operation):
    """Whether `operation` is a model whose call sites should be expanded."""
    return (
        isinstance(operation, keras.Model) and graph_of(operation) is not None
    )


def call_sites(model, input_shapes=None):
    """Lists every call of every operation of `model`, in graph order.

    Nested functional/Sequential models are expanded: their calls are listed
    instead of the model itself, with `path` set to `"outer_name/"`. Shapes
    are the ones stored on the graph's `KerasTensor`s; they are recomputed
    with `compute_output_spec` when `input_shapes` is given or when a nested
    model is called on tensors whose shape differs from the one it was built
    with (e.g. a backbone built with `(None, None, 3)` and called on
    `(None, 32, 32, 3)`).

    Args:
        model: a built functional or Sequential `keras.Model`.
        input_shapes: optional list of full input shapes (batch included),
            one per model input, to use instead of the stored ones.

    Returns:
        A list of `CallSite`.

    Raises:
        ValueError: if `model` has no functional graph.
    """
    graph = graph_of(model)
    if graph is None:
        raise ValueError(
            "`model` must be a built functional or Sequential model. "
            f"Received: model={model!r} (type {type(model).__name__}; "
            "subclassed models have no graph to walk, and an unbuilt "
            "Sequential model has no shapes)."
        )
    actual = None
    if input_shapes is not None:
        actual = [
            keras.KerasTensor(shape, dtype=x.dtype)
            for shape, x in zip(input_shapes, graph.inputs)
        ]
    sites = []
    _walk(graph, "", actual, sites)
    return sites


def _ordered_nodes(graph):
    # Decreasing depth is a topological order; ties follow `operations`
    # (Keras' own deterministic order, the one `model.summary()` shows).
    op_index = {id(op): i for i, op in enumerate(graph._operations)}
    keyed = []
    for depth, nodes in graph._nodes_by_depth.items():
        for node in nodes:
            if node.is_input or node.operation is None:
                continue
            op = node.operation
            keyed.append(
                (-depth, op_index[id(op)], op._inbound_nodes.index(node), node)
            )
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]


def _shape_key(shape):
    # The batch size never matters for the comparison: it is counted as 1.
    return tuple(shape)[1:]


def _walk(graph, path, actual_inputs, sites):
    if actual_inputs is not None:
        stored = [_shape_key(x.shape) for x in graph.inputs]
        given = [_shape_key(x.shape) for x in actual_inputs]
        if stored == given:
            actual_inputs = None
    tensors = None
    if actual_inputs is not None:
        tensors = {id(x): y for x, y in zip(graph.inputs, actual_inputs)}
    for node in _ordered_nodes(graph):
        op = node.operation
        if tensors is None:
            inputs = list(node.input_tensors)
            outputs = list(node.outputs)
        else:
            if any(id(x) not in tensors for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(tensors)
            outputs = keras.tree.flatten(
                op.compute_output_spec(*args, **kwargs)
            )
            for x, y in zip(node.outputs, outputs):
                tensors[id(x)] = y
            inputs = [tensors[id(x)] for x in node.input_tensors]
        if is_nested_graph(op):
            _walk(graph_of(op), f"{path}{op.name}/", inputs, sites)
            continue
        sites.append(
            CallSite(
                operation=op,
                path=path,
                input_shapes=[tuple(x.shape) for x in inputs],
                output_shapes=[tuple(x.shape) for x in outputs],
            )
        )
