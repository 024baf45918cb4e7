"""The one place where keras_neuronprune touches private Keras internals.

Keras 3 functional models keep their graph in `Node` objects: every call of
an operation on symbolic tensors records a node with its `arguments` and
`outputs`, and each `KerasTensor` remembers the node that made it in
`_keras_history`. The public surface (`model.operations`, `model.inputs`,
`model.outputs`) does not expose the call sites, so this module reads the
private attributes; if a Keras release renames them, only this file changes.
"""

import collections
import inspect
import weakref

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
    "inlined_graph",
    "is_functional",
    "is_sequential",
    "ops_classes",
    "rebuild_from_config",
    "run_through_graph",
    "tensor_producer",
    "trace_failure",
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

    Custom layers whose `call` is made of Keras layers and `keras.ops` are
    seen through: the graph returned has them replaced by nested functional
    models traced from their `call` (see `inlined_graph`); the model itself
    is returned when there is nothing to trace.

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
        return inlined_graph(functional)
    if isinstance(model, Functional):
        return inlined_graph(model)
    raise ValueError(
        f"`model` must be a functional or Sequential Keras model; received "
        f"a subclassed model '{getattr(model, 'name', model)}' of type "
        f"{type(model).__name__}, which has no functional graph to analyse. "
        "Rebuild it with `keras.Model(inputs, outputs)` or `keras.Sequential`."
    )


# ----------------------------------------------------------------------
# Seeing through custom layers.
#
# A custom layer (`class Block(keras.layers.Layer)` whose `call` applies
# sublayers and keras.ops) is one opaque node of the functional graph.
# Calling its `call` method directly on symbolic `KerasTensor`s records
# every sublayer call and every op as nodes of their own, which is the
# functional graph of the block: `keras.Model(inputs, block.call(inputs))`.
# The model's graph is then rebuilt with each such block replaced by that
# nested model (the sublayers are the block's own layer objects, so the
# weights are shared), and the channel graph, the rewriter, the cost
# counter and the pruning surgery all work on the result. Doing so appends
# call nodes to the reused layers (as any functional call does); the
# user's model graph itself is unchanged.

_INLINED = weakref.WeakKeyDictionary()
_TRACE_FAILURES = weakref.WeakKeyDictionary()


def trace_failure(layer):
    """Why `layer`'s call could not be traced (None if it was not tried)."""
    try:
        return _TRACE_FAILURES.get(layer)
    except TypeError:
        return None


def _is_custom_layer(op):
    """A user or library layer that is not a stock Keras class."""
    if not isinstance(op, keras.layers.Layer) or isinstance(op, keras.Model):
        return False
    module = (type(op).__module__ or "").split(".")[0]
    # Stock Keras layers and this library's pruning layers are described
    # by handlers or are barriers; they are never traced.
    return module not in ("keras", "keras_neuronprune")


def _should_trace(op):
    from keras_neuronprune.graph.handlers import costed_by_user as has_user_rule
    from keras_neuronprune.graph.handlers import get_handler

    return (
        _is_custom_layer(op)
        and get_handler(op) is None
        and not has_user_rule(op)
    )


def _registry_version():
    from keras_neuronprune.graph.handlers import registry_version as a
    from keras_neuronprune.graph.handlers import registry_version as b

    return (a(), b())


def inlined_graph(functional):
    """`functional` with its traceable custom layers inlined (cached).

    Returns `functional` itself when no custom layer (in it or in a nested
    model) can be traced.
    """
    from keras_neuronprune.graph.attention_handlers import (
        register_library_handlers,
    )

    register_library_handlers()
    version = _registry_version()
    try:
        cached = _INLINED.get(functional)
    except TypeError:
        cached = None
    if cached is not None and cached[0] == version:
        return cached[1]
    graph = _inline(functional) or functional
    try:
        _INLINED[functional] = (version, graph)
        _INLINED[graph] = (version, graph)
    except TypeError:
        pass
    return graph


def _own_variables(layer):
    inner = set()
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        inner.update(id(v) for v in sub.weights)
    return [v for v in layer.weights if id(v) not in inner]


def _tensor_leaves(arguments):
    return [
        x
        for x in keras.tree.flatten((arguments.args, arguments.kwargs))
        if isinstance(x, keras.KerasTensor)
    ]


def _non_tensor_leaves(arguments):
    out = []
    for x in keras.tree.flatten((arguments.args, arguments.kwargs)):
        if isinstance(x, keras.KerasTensor):
            out.append(("tensor",))
        else:
            out.append(x)
    return out


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (arrays and odd objects compare badly)
        return a is b


def _merged_shapes(nodes):
    shapes = None
    for node in nodes:
        current = [tuple(t.shape) for t in _tensor_leaves(node.arguments)]
        if shapes is None:
            shapes = current
            continue
        if [len(s) for s in shapes] != [len(s) for s in current]:
            return None
        shapes = [
            tuple(a if a == b else None for a, b in zip(s, c))
            for s, c in zip(shapes, current)
        ]
    return shapes


def _trace(layer, nodes):
    """Returns `(nested model, None)` or `(None, reason)`."""
    name = f"'{layer.name}' ({type(layer).__name__})"
    own = _own_variables(layer)
    if own:
        return None, (
            f"custom layer {name} uses weights of its own "
            f"{sorted(v.name for v in own)} in its call; describe it with "
            "keras_neuronprune.register_layer_handler"
        )
    first = nodes[0]
    leaves = _non_tensor_leaves(first.arguments)
    for node in nodes[1:]:
        other = _non_tensor_leaves(node.arguments)
        if len(other) != len(leaves) or not all(
            _same(a, b) for a, b in zip(leaves, other)
        ):
            return None, (
                f"custom layer {name} is called with different non-tensor "
                "arguments at different places"
            )
    shapes = _merged_shapes(nodes)
    tensors = _tensor_leaves(first.arguments)
    if shapes is None or not tensors:
        return None, f"custom layer {name} has no tensor input to trace"
    inputs = [
        keras.Input(
            batch_shape=(None,) + tuple(shape[1:]),
            dtype=t.dtype,
            name=f"{layer.name}_input_{i}" if i else f"{layer.name}_input",
        )
        for i, (t, shape) in enumerate(zip(tensors, shapes))
    ]
    replace = {id(t): x for t, x in zip(tensors, inputs)}
    flat = [
        replace.get(id(x), x)
        for x in keras.tree.flatten(
            (first.arguments.args, first.arguments.kwargs)
        )
    ]
    args, kwargs = keras.tree.pack_sequence_as(
        (first.arguments.args, first.arguments.kwargs), flat
    )
    try:
        with _trace_adapter(layer):
            outputs = layer.call(*args, **kwargs)
        outputs = _no_pass_through(outputs, inputs)
        nested = keras.Model(
            inputs[0] if len(inputs) == 1 else inputs,
            outputs,
            name=layer.name,
        )
    except Exception as e:  # noqa: BLE001 (any failure means "opaque")
        message = str(e).strip().splitlines()[0][:200] if str(e) else ""
        if "None" in message and any(None in s for s in shapes):
            return None, (
                f"custom layer {name} computes a tensor from a size that is "
                f"unknown in the graph (input shapes {shapes}; e.g. a causal "
                "mask built from `ops.shape`), which a symbolic trace cannot "
                f"do ({type(e).__name__}: {message}); call it on inputs of "
                "fixed batch and sequence size, or describe it with "
                "keras_neuronprune.register_layer_handler"
            )
        return None, (
            f"custom layer {name} could not be traced on symbolic inputs "
            f"({type(e).__name__}: {message}); describe it with "
            "keras_neuronprune.register_layer_handler"
        )
    for _ in range(4):
        if not _resolve_unknown_reshapes(nested):
            break
        # Re-run the graph so that the sizes now known reach later ops.
        fresh = [
            keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name)
            for x in inputs
        ]
        nested = keras.Model(
            fresh[0] if len(fresh) == 1 else fresh,
            nested._run_through_graph(fresh, operation_fn=lambda op: op),
            name=layer.name,
        )
    for node in _all_nodes(nested):
        for x in keras.tree.flatten(
            (node.arguments.args, node.arguments.kwargs)
        ):
            if isinstance(x, keras.Variable):
                return None, (
                    f"custom layer {name} passes the weight {x.name!r} to "
                    f"'{node.operation.name}' directly; describe it with "
                    "keras_neuronprune.register_layer_handler"
                )
    expected = [tuple(t.shape)[1:] for t in first.outputs]
    got = [tuple(t.shape)[1:] for t in nested.outputs]
    if len(expected) != len(got) or any(
        len(a) != len(b) or any(x is not None and y is not None and x != y
                                for x, y in zip(a, b))
        for a, b in zip(expected, got)
    ):  # fmt: skip
        return None, (
            f"custom layer {name} traces to outputs {got} instead of {expected}"
        )
    return inlined_graph(nested), None


class _trace_adapter:
    """Context in which a known library layer's call can be traced.

    Some keras-hub blocks compute a tensor from Python sizes read with
    `ops.shape` (a causal mask from the batch and sequence sizes), which a
    symbolic input with unknown sizes cannot give. For the classes of
    `_TRACE_ADAPTERS`, that one computation is replaced, during the trace
    only, by the same tensor computed with `keras.ops` from a tensor of
    the call, so it is recorded in the graph and runs at any size.
    """

    def __init__(self, layer):
        self.layer = layer
        self.patched = []

    def __enter__(self):
        self.classes = _omit_none_arguments(self.layer)
        for cls in type(self.layer).__mro__:
            adapter = _TRACE_ADAPTERS.get(
                f"{cls.__module__}.{cls.__qualname__}"
            )
            if adapter is not None:
                for name, method in adapter(self.layer).items():
                    object.__setattr__(self.layer, name, method)
                    self.patched.append(name)
                break
        return self

    def __exit__(self, *exc):
        for name in self.patched:
            object.__delattr__(self.layer, name)
        for cls, own in self.classes:
            if own is None:
                del cls.__call__
            else:
                cls.__call__ = own
        return False


def _omit_none_arguments(layer):
    """Lets `layer`'s sublayers be called on symbolic tensors in a trace.

    A sublayer whose `compute_output_spec` takes fewer arguments than its
    `call` (keras-hub's `CachedMultiHeadAttention`: `cache=None`) works
    inside a normal symbolic call, which runs `call` on backend tensors,
    but not when the trace calls it on `KerasTensor`s. While tracing, such
    arguments are left out of the call when they are None (their default),
    so the recorded node does not hold them either. Returns the patched
    classes with their own previous `__call__` (None if inherited).
    """
    patched = []
    seen = set()
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        cls = type(sub)
        if cls in seen or "__call__" in vars(cls) and _is_omitting(cls):
            continue
        seen.add(cls)
        spec = getattr(cls, "compute_output_spec", None)
        if spec is None or spec is keras.layers.Layer.compute_output_spec:
            continue
        try:
            accepted = inspect.signature(spec).parameters
            called = inspect.signature(cls.call).parameters
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            continue
        omitted = tuple(
            name
            for name, p in called.items()
            if name not in accepted
            and name not in ("self", "training", "mask")
            and p.default is None
        )
        if not omitted:
            continue
        own = vars(cls).get("__call__")
        cls.__call__ = _omitting_call(cls.__call__, omitted)
        patched.append((cls, own))
    return patched


def _is_omitting(cls):
    return getattr(vars(cls)["__call__"], "_omits_none", False)


def _omitting_call(call, omitted):
    def __call__(self, *args, **kwargs):
        for name in omitted:
            if name in kwargs and kwargs[name] is None:
                del kwargs[name]
        return call(self, *args, **kwargs)

    __call__._omits_none = True
    return __call__


def _runtime_causal_mask(reference):
    """`(batch, n, n)` booleans `i >= j`, sized from `reference` at run time.

    `reference` is a `(batch, n)` padding mask or a `(batch, n, d)`
    sequence; positions are the cumulative sum of ones shaped like it, so
    no size is read in Python.
    """
    ops = keras.ops
    if len(reference.shape) > 2:
        reference = ops.sum(
            reference, axis=tuple(range(2, len(reference.shape)))
        )
    positions = ops.cumsum(ops.cast(ops.ones_like(reference), "int32"), axis=1)
    return ops.greater_equal(
        ops.expand_dims(positions, 2), ops.expand_dims(positions, 1)
    )


def _decoder_mask_adapter(layer):
    # keras-hub `TransformerDecoder._compute_self_attention_mask`: the
    # padding/attention mask merge stays as it is; the causal part, built
    # from `ops.shape` sizes, is recorded from a tensor instead.
    original = layer._compute_self_attention_mask

    def compute(
        decoder_sequence,
        decoder_padding_mask,
        decoder_attention_mask,
        use_causal_mask,
        self_attention_cache,
        self_attention_cache_update_index,
    ):
        sizes_known = None not in tuple(decoder_sequence.shape)[:2]
        if (
            not use_causal_mask
            or self_attention_cache is not None
            or sizes_known
        ):
            return original(
                decoder_sequence=decoder_sequence,
                decoder_padding_mask=decoder_padding_mask,
                decoder_attention_mask=decoder_attention_mask,
                use_causal_mask=use_causal_mask,
                self_attention_cache=self_attention_cache,
                self_attention_cache_update_index=(
                    self_attention_cache_update_index
                ),
            )
        merged = original(
            decoder_sequence=decoder_sequence,
            decoder_padding_mask=decoder_padding_mask,
            decoder_attention_mask=decoder_attention_mask,
            use_causal_mask=False,
            self_attention_cache=None,
            self_attention_cache_update_index=None,
        )
        reference = decoder_sequence
        if decoder_padding_mask is not None:
            reference = decoder_padding_mask
        causal = _runtime_causal_mask(reference)
        if merged is None:
            return causal
        return keras.ops.minimum(merged, causal)

    return {"_compute_self_attention_mask": compute}


_TRACE_ADAPTERS = {
    "keras_hub.src.layers.modeling.transformer_decoder.TransformerDecoder": (
        _decoder_mask_adapter
    ),
}


def _resolve_unknown_reshapes(nested):
    """Makes reshapes written from `ops.shape` runnable on real tensors.

    `ops.reshape(x, (B, H, W, C))` with `B, ... = ops.shape(x)` records the
    target `(None, H, W, C)` when the batch is unknown, which only a
    symbolic tensor accepts. Where the batch is the only unknown size and
    the input's other sizes are known, the target becomes `(-1, H, W, C)`
    (with any `-1` among the other sizes worked out from the input).
    """
    from keras.src.ops import numpy as knp

    changed = False
    for node in _all_nodes(nested):
        op = node.operation
        if not isinstance(op, knp.Reshape) or not node.input_tensors:
            continue
        target = tuple(op.newshape)
        if None not in target:
            continue
        shape = tuple(node.input_tensors[0].shape)
        rest = [d for d in target[1:]]
        if target[0] is not None or None in rest or None in shape[1:]:
            continue
        total = 1
        for d in shape[1:]:
            total *= int(d)
        if -1 in rest:
            known = 1
            for d in rest:
                known *= int(d) if d != -1 else 1
            if known == 0 or total % known or rest.count(-1) > 1:
                continue
            rest[rest.index(-1)] = total // known
        op.newshape = (-1, *rest)
        changed = True
    return changed


def _no_pass_through(outputs, inputs):
    """`outputs` with each input returned as is wrapped in an Identity.

    A call that returns its input unchanged (DropPath at inference) would
    make a model `Model(x, x)`; calling that makes the caller's tensor its
    own producer (a cycle in the outer graph).
    """
    ids = {id(x) for x in inputs}
    return keras.tree.map_structure(
        lambda t: keras.layers.Identity()(t) if id(t) in ids else t, outputs
    )


def _all_nodes(graph):
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def _inline(functional):
    """A copy of `functional`'s graph with custom layers traced, or None."""
    sites = collections.OrderedDict()
    replacements = {}
    for node in _all_nodes(functional):
        op = node.operation
        if isinstance(op, keras.Model):
            inner = graph_of(op)
            if inner is not None and id(op) not in replacements:
                new = inlined_graph(inner)
                if new is not inner:
                    replacements[id(op)] = new
        elif _should_trace(op):
            sites.setdefault(id(op), (op, []))[1].append(node)
    for op, nodes in sites.values():
        nested, reason = _trace(op, nodes)
        if nested is None:
            try:
                _TRACE_FAILURES[op] = reason
            except TypeError:
                pass
            continue
        replacements[id(op)] = _call_traced(nested)
    if not replacements:
        return None
    new_inputs = [
        keras.Input(
            batch_shape=x.shape,
            dtype=x.dtype,
            sparse=getattr(x, "sparse", False),
            name=tensor_producer(x)[0].name,
        )
        for x in functional.inputs
    ]
    outputs = functional._run_through_graph(
        new_inputs, operation_fn=lambda op: replacements.get(id(op), op)
    )
    inputs = keras.tree.pack_sequence_as(functional._inputs_struct, new_inputs)
    return keras.Model(inputs, outputs, name=functional.name)


def _call_traced(nested):
    """Calls `nested` with the tensors of a custom layer's call."""

    def call(*args, **kwargs):
        tensors = [
            x
            for x in keras.tree.flatten((args, kwargs))
            if isinstance(x, keras.KerasTensor)
        ]
        return nested(tensors[0] if len(tensors) == 1 else tensors)

    return call


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


def shape_ops():
    """Raw `keras.ops` classes that move, cut or pad tensors, by name.

    `ops.pad(x, ...)`, `ops.split(x, ...)`, `x[..., :k]`... record these
    private classes in functional graphs; `graph/ops_handlers.py` says how
    channels flow through each of them.
    """
    from keras.src.ops import core
    from keras.src.ops import numpy as knp

    found = {}
    for module, names in (
        (knp, ("Pad", "Split", "Concatenate", "Reshape", "Transpose",
               "GetItem", "Mean", "Max", "Min", "Sum", "ExpandDims",
               "Squeeze", "Clip", "Power", "Square", "Log", "Reciprocal")),
        (core, ("Slice", "StopGradient")),
    ):  # fmt: skip
        for name in names:
            if hasattr(module, name):
                found[name] = getattr(module, name)
    return found


def ops_classes(module, names):
    """`{name: class}` of the raw `keras.ops` classes of one ops module.

    Args:
        module: the name of a module of `keras.src.ops` (`"numpy"`, `"nn"`,
            `"core"`, `"math"`...).
        names: class names to look up; a name this Keras release lacks (or
            re-exports from another module) is skipped.

    Returns:
        dict mapping each name found to its (private) op class.
    """
    import importlib

    mod = importlib.import_module(f"keras.src.ops.{module}")
    found = {}
    for name in names:
        cls = getattr(mod, name, None)
        if (
            isinstance(cls, type)
            and cls.__name__ == name
            and cls.__module__ == mod.__name__
        ):
            found[name] = cls
    return found


def trusted_deserialization():
    """Context in which `from_config` may rebuild Lambda layers.

    The rewriter re-creates layers from the configs of a model already in
    memory (the Python functions are the user's own objects), so Keras'
    safe mode, meant for loading untrusted files, does not apply.
    """
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(False)


# Keys every layer config holds that `Layer.__init__` takes as kwargs.
_BASE_LAYER_KEYS = (
    "name",
    "trainable",
    "dtype",
    "autocast",
    "input_shape",
    "batch_input_shape",
    "input_dim",
    "activity_regularizer",
)


def rebuild_from_config(layer, config):
    """A new layer of `layer`'s class made from `config`.

    Some library layers write keys into `get_config` that their `__init__`
    does not take (keras-hub's `ViTPatchingAndEmbedding` writes the derived
    `num_patches`, `num_positions`), so `from_config` fails on their own
    config. Such a layer is rebuilt from the keys its constructors accept;
    the rebuilder then sets the original weights, whose shapes check that
    the rebuilt layer is the same.

    Raises:
        ValueError: naming the layer, if neither config can rebuild it.
    """
    import inspect

    cls = layer.__class__
    with trusted_deserialization():
        try:
            return cls.from_config(config)
        except (TypeError, ValueError) as error:
            first = error
        accepted = set(_BASE_LAYER_KEYS)
        takes_any = False
        for klass in cls.__mro__:
            if klass is keras.layers.Layer or "__init__" not in vars(klass):
                continue
            params = inspect.signature(klass.__init__).parameters.values()
            accepted.update(p.name for p in params)
            takes_any = takes_any or any(
                p.kind is p.VAR_KEYWORD for p in params
            )
        kept = {k: v for k, v in config.items() if k in accepted}
        if takes_any and len(kept) < len(config):
            try:
                return cls.from_config(kept)
            except (TypeError, ValueError):
                pass
    message = str(first).splitlines()[0][:300] if str(first) else ""
    raise ValueError(
        f"Layer '{layer.name}' ({cls.__name__}) cannot be rebuilt from its "
        f"own `get_config()` ({type(first).__name__}: {message}); make its "
        "config round-trip or add it to `ignored_layers`"
    ) from first


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
    if graph is not None:
        graph = inlined_graph(graph)
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
            _walk(
                inlined_graph(graph_of(op)), f"{path}{op.name}/", inputs, sites
            )
            continue
        sites.append(
            ShapedCallSite(
                operation=op,
                path=path,
                input_shapes=[tuple(x.shape) for x in inputs],
                output_shapes=[tuple(x.shape) for x in outputs],
            )
        )
