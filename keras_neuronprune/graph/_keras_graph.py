"""The one place where keras_neuronprune touches private Keras internals.

Keras 3 functional models keep their graph in `Node` objects: every call of
an operation on symbolic tensors records a node with its `arguments` and
`outputs`, and each `KerasTensor` remembers the node that made it in
`_keras_history`. The public surface (`model.operations`, `model.inputs`,
`model.outputs`) does not expose the call sites, so this module reads the
private attributes; if a Keras release renames them, only this file changes.
"""

import collections

import keras
from keras.src.models.functional import Functional
from keras.src.models.functional import functional_from_config  # noqa: F401
from keras.src.ops.node import Node  # noqa: F401

__all__ = [
    "CallSite",
    "ShapedCallSite",
    "shaped_call_sites",
    "as_functional",
    "call_sites",
    "functional_from_config",
    "is_functional",
    "is_sequential",
    "run_through_graph",
    "tensor_producer",
]


class CallSite:
    """One call of an operation inside a functional graph.

    Attributes:
        operation: the `Layer` or `Operation` called.
        node: the private Keras `Node`.
        inputs: flat list of the symbolic input tensors (KerasTensor).
        outputs: flat list of the symbolic output tensors.
        args, kwargs: the call's arguments (tensors included).
    """

    __slots__ = ("operation", "node", "inputs", "outputs", "args", "kwargs")

    def __init__(self, node):
        self.node = node
        self.operation = node.operation
        self.inputs = list(node.input_tensors)
        self.outputs = list(node.outputs)
        self.args = node.arguments.args
        self.kwargs = node.arguments.kwargs


def is_sequential(model):
    return isinstance(model, keras.Sequential)


def is_functional(model):
    return isinstance(model, Functional) and not is_sequential(model)


def as_functional(model):
    """Returns the functional graph behind a functional or Sequential model.

    Raises:
        ValueError: for a subclassed model (no graph to read) or an unbuilt
            Sequential model.
    """
    if is_sequential(model):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                f"Sequential model '{model.name}' is not built: give it an "
                "`keras.Input(shape)` first or call `model.build(shape)`."
            )
        return functional
    if isinstance(model, Functional):
        return model
    raise ValueError(
        f"`model` must be a functional or Sequential Keras model; received "
        f"a subclassed model '{getattr(model, 'name', model)}' of type "
        f"{type(model).__name__}, which has no functional graph to analyse. "
        "Rebuild it with `keras.Model(inputs, outputs)` or `keras.Sequential`."
    )


def call_sites(functional):
    """Yields the call sites of a functional graph in execution order."""
    nodes_by_depth = functional._nodes_by_depth
    for depth in sorted(nodes_by_depth.keys(), reverse=True):
        for node in nodes_by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            yield CallSite(node)


def tensor_producer(tensor):
    """Returns `(operation, node_index, tensor_index)` that made `tensor`."""
    history = tensor._keras_history
    return history.operation, history.node_index, history.tensor_index


def run_through_graph(functional, inputs, operation_fn):
    """Re-executes a functional graph on new inputs, mapping each op."""
    return functional._run_through_graph(inputs, operation_fn=operation_fn)


def applications_helper_layers():
    """The helper layers that keras.applications define privately."""
    from keras.src.applications.convnext import LayerScale
    from keras.src.applications.convnext import StochasticDepth
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    return {
        "LayerScale": LayerScale,
        "StochasticDepth": StochasticDepth,
        "CustomScaleLayer": CustomScaleLayer,
    }


def elementwise_binary_ops():
    """Raw `keras.ops` classes recorded in graphs by `x + y`, `x * y`..."""
    from keras.src.ops import numpy as knp

    names = ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Divide",
             "TrueDivide")  # fmt: skip
    return [getattr(knp, n) for n in names if hasattr(knp, n)]


def elementwise_unary_ops():
    """Raw `keras.ops` classes that act on every element independently."""
    from keras.src.ops import core
    from keras.src.ops import nn
    from keras.src.ops import numpy as knp

    found = []
    for module, names in (
        (knp, ("Absolute", "Negative", "Exp", "Sqrt", "Square", "Tanh")),
        (nn, ("Relu", "Relu6", "Sigmoid", "Silu", "HardSigmoid", "HardSilu",
              "Gelu", "Elu", "Selu", "LeakyRelu", "Softplus", "Softsign")),
        (core, ("Cast",)),
    ):  # fmt: skip
        found += [getattr(module, n) for n in names if hasattr(module, n)]
    return found


def trusted_deserialization():
    """Context in which `from_config` may rebuild Lambda layers.

    The rewriter re-creates layers from the configs of a model already in
    memory (the Python functions are the user's own objects), so Keras'
    safe mode, meant for loading untrusted files, does not apply.
    """
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(False)


# Per-call shapes, used by the cost counter.

ShapedCallSite = collections.namedtuple(
    "ShapedCallSite", ["operation", "path", "input_shapes", "output_shapes"]
)
ShapedCallSite.__doc__ = """One call of an operation inside a model graph.

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


def shaped_call_sites(model, input_shapes=None):
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
        A list of `ShapedCallSite`.

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
            ShapedCallSite(
                operation=op,
                path=path,
                input_shapes=[tuple(x.shape) for x in inputs],
                output_shapes=[tuple(x.shape) for x in outputs],
            )
        )
