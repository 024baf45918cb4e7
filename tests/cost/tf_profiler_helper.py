"""Reference FLOP count from TensorFlow's own profiler (test helper).

The model is traced into a concrete function at batch size 1 and
`tf.compat.v1.profiler.profile(graph, options=float_operation())` counts the
FLOPs of every op that has a registered "flops" statistic. Freezing the
variables into constants first (`convert_variables_to_constants_v2`) gives
the same total (checked in test_tf_profiler_agreement.py) but takes ~12 s
per keras.applications model, so it is optional.
"""

import tensorflow as tf
from tensorflow.python.framework import convert_to_constants
from tensorflow.python.framework import ops as tf_ops

# Importing this module registers the "flops" statistics of elementwise,
# reduction, pooling and matmul ops (tensorflow's nn_ops only registers
# Conv2D/Conv3D/DepthwiseConv2dNative/BiasAdd); the profiler imports it too.
from tensorflow.python.profiler.internal import flops_registry  # noqa: F401


def model_graph(model, freeze=False):
    """Returns the tf.Graph of `model`'s inference call at batch size 1."""
    specs = [
        tf.TensorSpec((1,) + tuple(x.shape[1:]), x.dtype) for x in model.inputs
    ]

    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    concrete = tf.function(forward).get_concrete_function(*specs)
    if freeze:
        concrete = convert_to_constants.convert_variables_to_constants_v2(
            concrete
        )
    return concrete.graph


def _is_constant_source(op):
    if op.type in ("Const", "ReadVariableOp", "VarHandleOp"):
        return True
    # Captured variables enter a concrete function as resource placeholders.
    return op.type == "Placeholder" and op.outputs[0].dtype == tf.resource


def constant_ops(graph):
    """Names of ops whose inputs are all constants or variables.

    These compute per-channel values (e.g. batch normalization's
    `gamma * rsqrt(var + eps)`) that an inference converter folds away.
    """
    constant = set()
    for op in graph.get_operations():  # topological order
        if _is_constant_source(op) or (
            op.inputs and all(t.op.name in constant for t in op.inputs)
        ):
            constant.add(op.name)
    return constant


def tf_profiler_flops(model, freeze=False):
    """Returns `(total, foldable)` FLOPs of `model` at batch size 1.

    `total` is TF profiler's count; `foldable` is the part of it spent on
    ops with only constant/variable inputs.
    """
    graph = model_graph(model, freeze=freeze)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    result = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    foldable = 0
    for name in constant_ops(graph):
        node_def = graph.get_operation_by_name(name).node_def
        try:
            stats = tf_ops.get_stats_for_node_def(graph, node_def, "flops")
        except ValueError:
            continue
        foldable += int(stats.value or 0)
    return int(result.total_float_ops), foldable
