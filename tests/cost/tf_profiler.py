"""Reference FLOP count from TensorFlow's own profiler (test helper).

The model is traced at batch size 1, its variables are frozen into
constants, and `tf.compat.v1.profiler.profile` with
`ProfileOptionBuilder.float_operation()` counts the FLOPs of every op that
has a registered "flops" statistic.
"""

import collections

import tensorflow as tf
from tensorflow.python.framework import convert_to_constants
from tensorflow.python.profiler import tfprof_logger

# Importing this module registers the "flops" statistics of elementwise,
# reduction, pooling and matmul ops (only Conv2D/Depthwise/BiasAdd are
# registered by tensorflow's nn_ops otherwise).
from tensorflow.python.profiler.internal import flops_registry  # noqa: F401


def frozen_graph(model):
    """Returns the tf.Graph of `model` at batch size 1, variables frozen."""
    specs = [tf.TensorSpec((1,) + tuple(x.shape[1:]), x.dtype) for x in model.inputs]

    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    concrete = tf.function(forward).get_concrete_function(*specs)
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    return frozen.graph


def tf_profiler_flops(model):
    """FLOPs of `model` (batch 1) as counted by TF's profiler."""
    graph = frozen_graph(model)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    result = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    return result.total_float_ops


def tf_flops_by_op(model, exclude_constant=False):
    """Per-op-type FLOPs from the same statistics the profiler uses.

    With `exclude_constant=True`, ops whose inputs are all constants (the
    per-channel arithmetic of batch normalization once variables are frozen,
    which any inference converter folds away) are left out.
    """
    graph = frozen_graph(model)
    logged, _ = tfprof_logger._get_logged_ops(graph, None, add_trace=False)
    constant = set()
    for op in graph.get_operations():
        if op.type == "Const" or (
            op.inputs and all(t.op.name in constant for t in op.inputs)
        ):
            constant.add(op.name)
    totals = collections.Counter()
    for name, entry in logged.items():
        if exclude_constant and name in constant:
            continue
        totals[graph.get_operation_by_name(name).type] += entry.float_ops
    return dict(totals)
