"""The one place where keras_neuronprune touches private Keras internals.

Keras 3 functional models keep their graph in `Node` objects: every call of
an operation on symbolic tensors records a node with its `arguments` and
`outputs`, and each `KerasTensor` remembers the node that made it in
`_keras_history`. The public surface (`model.operations`, `model.inputs`,
`model.outputs`) does not expose the call sites, so this module reads the
private attributes; if a Keras release renames them, only this file changes.
"""

import keras
from keras.src.models.functional import Functional
from keras.src.models.functional import functional_from_config  # noqa: F401
from keras.src.ops.node import Node  # noqa: F401

__all__ = [
    "CallSite",
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
