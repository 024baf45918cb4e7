"""Parameter and FLOP counter for functional and Sequential Keras models."""

import collections
import math
import warnings

import keras

from keras_neuronprune.cost.layer_cost import LayerCost
from keras_neuronprune.cost.model_cost import ModelCost
from keras_neuronprune.graph import _keras_graph as _shapes
from keras_neuronprune.graph.flops_formulas import UndefinedShapeError
from keras_neuronprune.graph.flops_formulas import UnknownActivationError
from keras_neuronprune.graph.flops_formulas import channel_axis
from keras_neuronprune.graph.handlers import layer_flops


def count_cost(model, input_shape=None):
    """Counts the parameters and FLOPs of a Keras model, layer by layer.

    FLOPs are for one forward pass in inference mode at batch size 1, with a
    multiply-add counted as 2 FLOPs (see docs/cost.md for every layer's
    formula). The conventions agree with TensorFlow's profiler
    (`tf.compat.v1.profiler` with `float_operation()`) to within 1% on
    keras.applications models.

    Nested models (a functional or Sequential model used as a layer) are
    expanded: their layers appear as `"outer/inner"`. A layer called several
    times (shared weights) has one row per call; its parameters are counted
    once, its FLOPs at every call.

    Args:
        model: a built functional or Sequential `keras.Model`.
        input_shape: optional input shape without the batch dimension, e.g.
            `(224, 224, 3)`, or a list of such shapes for a multi-input
            model. Needed when the model was built with undefined dimensions
            (e.g. `input_shape=(None, None, 3)`); overrides the model's own
            input shapes otherwise.

    Returns:
        A `ModelCost` with `params`, `flops` and the per-call `layers`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model has no functional graph (subclassed or
            unbuilt Sequential model), if `input_shape` does not match the
            model's inputs, or if a shape needed for a FLOP count is
            undefined.

    Example:

    ```python
    model = keras.applications.MobileNetV2(weights=None)
    cost = keras_neuronprune.count_cost(model)
    print(cost.params, cost.flops)  # 3538984 ~ 0.6e9
    print(cost)                     # per-layer table
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model={model!r}"
        )
    input_shapes = _full_input_shapes(model, input_shape)
    sites = _shapes.shaped_call_sites(model, input_shapes)

    counted_weights = set()
    calls_seen = collections.Counter()
    rows = []
    uncounted = []
    missing = collections.defaultdict(list)
    for site in sites:
        op = site.operation
        name = site.path + op.name
        call_index = calls_seen[id(op)]
        calls_seen[id(op)] += 1
        params = 0
        for weight in getattr(op, "weights", ()):
            if id(weight) not in counted_weights:
                counted_weights.add(id(weight))
                params += math.prod(weight.shape)
        ins = [_batch_one(s) for s in site.input_shapes]
        outs = [_batch_one(s) for s in site.output_shapes]
        flops = None
        try:
            flops = layer_flops(op, ins, outs)
        except UnknownActivationError as e:
            missing[f"activation {e}"].append(name)
        except UndefinedShapeError as e:
            raise ValueError(
                "count_cost needs fully defined shapes, but layer "
                f"{name!r} has undefined dimensions: inputs {ins}, "
                f"outputs {outs} (batch shown as 1). Pass the input "
                "size, e.g. count_cost(model, input_shape=(224, 224, 3))."
            ) from e
        if flops is NotImplemented:
            missing[type(op).__name__].append(name)
            flops = None
        if flops is None:
            uncounted.append(name)
            flops = 0
        axis = _channel_axis(op)
        rows.append(
            LayerCost(
                name=name,
                class_name=type(op).__name__,
                params=int(params),
                flops=int(flops),
                input_shapes=tuple(ins),
                output_shapes=tuple(outs),
                channels_in=_channels(ins, axis),
                channels_out=_channels(outs, axis),
                call_index=call_index,
            )
        )
    if missing:
        detail = "; ".join(
            f"{kind}: {', '.join(names[:5])}"
            + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
            for kind, names in missing.items()
        )
        warnings.warn(
            "count_cost: no FLOP rule for some layers, counted as 0 FLOPs "
            f"({detail}). Give them with the layer's handler: "
            "keras_neuronprune.register_layer_handler(layer_class, "
            "handler.with_flops(rule)).",
            stacklevel=2,
        )
    total_params = _count_params(model, counted_weights, rows)
    return ModelCost(
        name=model.name,
        params=total_params,
        flops=sum(row.flops for row in rows),
        layers=tuple(rows),
        uncounted=tuple(uncounted),
    )


def _count_params(model, counted_weights, rows):
    # Weights owned by the model itself rather than by one of its layers
    # (rare) still belong in the total, as in model.count_params().
    total = sum(row.params for row in rows)
    for weight in model.weights:
        if id(weight) not in counted_weights:
            counted_weights.add(id(weight))
            total += math.prod(weight.shape)
    return int(total)


def _full_input_shapes(model, input_shape):
    if input_shape is None:
        return None
    graph = _shapes.graph_of(model)
    n_inputs = len(graph.inputs) if graph is not None else 1
    if _is_shape(input_shape):
        shapes = [input_shape]
    elif isinstance(input_shape, (list, tuple)) and all(
        _is_shape(s) for s in input_shape
    ):
        shapes = list(input_shape)
    else:
        raise ValueError(
            "`input_shape` must be a shape tuple without the batch dimension "
            "(e.g. (224, 224, 3)) or a list of such tuples. "
            f"Received: input_shape={input_shape!r}"
        )
    if len(shapes) != n_inputs:
        raise ValueError(
            f"`input_shape` must give one shape per model input ({n_inputs})."
            f" Received: input_shape={input_shape!r}"
        )
    if graph is not None:
        for shape, x in zip(shapes, graph.inputs):
            if len(shape) != len(x.shape) - 1:
                raise ValueError(
                    "`input_shape` must not include the batch dimension and "
                    f"must have the rank of the model input {x.shape}. "
                    f"Received: input_shape={input_shape!r}"
                )
    return [(None,) + tuple(shape) for shape in shapes]


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and d >= 0) for d in value
    )


def _batch_one(shape):
    shape = tuple(shape)
    return (1,) + shape[1:] if shape else shape


def _channel_axis(op):
    if isinstance(op, keras.layers.BatchNormalization):
        axis = op.axis
        return axis[-1] if isinstance(axis, (list, tuple)) else axis
    return channel_axis(op)


def _channels(shapes, axis):
    if not shapes or len(shapes[0]) < 2:
        return None
    try:
        return shapes[0][axis]
    except IndexError:
        return None
