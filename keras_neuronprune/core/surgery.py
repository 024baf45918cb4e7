"""Model surgery: walk, find, clone and copy layers of a Keras model (private).

The one place where channel pruning (`pruning/_surgery.py`), weight
sparsity (`sparsity/`) and the criteria walk models, look layers up by
path, rebuild a model with a clone function, copy weights into the rebuilt
layers and check that a rebuilt model computes what the original computes.
It stands on `graph/_keras_graph.py` only, so every package above `graph`
may import it.

Two views of a model are walked:

- the *Keras view* (`graph=False`, the default): the model's own `layers`,
  as `keras.models.clone_model(recursive=True)` rebuilds them. Nested
  models are entered (their layers are yielded, not the models), input
  layers are skipped and custom layers stay whole.
- the *graph view* (`graph=True`): the functional graph the channel graph
  reads (`_keras_graph.as_functional`), in which custom layers made of
  Keras layers and `keras.ops` are seen through as nested models. Every
  layer is yielded, nested models before their own layers.

Paths are `"outer_model/inner_layer"` for layers of nested models, as in
the channel-group member names.
"""

import keras
import numpy as np

from keras_neuronprune.graph import _keras_graph as kg


def iter_operations(model, prefix=""):
    """Yields `(path, operation)` for every operation of the graph view.

    Keras records Python operators and `keras.ops` calls on symbolic
    tensors (`x + 3.0` in MobileNetV3's hard-sigmoid) as operations that
    are not layers; channel groups name them as members too.

    Args:
        model: a functional (or inlined) model.
        prefix: path prefix of the operations of `model`.

    Yields:
        `(path, operation)`, nested models included (the model itself,
        then its operations).
    """
    for operation in model.operations:
        path = prefix + operation.name
        yield path, operation
        if isinstance(operation, keras.Model):
            try:
                inner = kg.as_functional(operation)
            except ValueError:
                continue
            yield from iter_operations(inner, path + "/")


def iter_layers(model, prefix="", graph=False):
    """Yields `(path, layer)` for every layer, nested models included.

    Args:
        model: a functional or Sequential model.
        prefix: path prefix of the layers of `model`.
        graph: walk the graph view instead of the Keras view (see the
            module docstring).

    Yields:
        `(path, layer)` pairs.
    """
    if graph:
        for path, operation in iter_operations(model, prefix):
            if isinstance(operation, keras.layers.Layer):
                yield path, operation
        return
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model) and hasattr(layer, "layers"):
            yield from iter_layers(layer, prefix=f"{path}/")
        else:
            yield path, layer


def layers_by_path(model, graph=False):
    """Dict path -> layer of `iter_layers(model, graph=graph)`."""
    return dict(iter_layers(model, graph=graph))


def find_layer(model, path):
    """The layer at `path` (`"outer/inner"` inside nested models).

    Args:
        model: a Keras model.
        path: layer name, or names joined by "/" through nested models.

    Returns:
        The layer object.

    Raises:
        ValueError: naming the path when a part is not found.
    """
    layer = model
    for part in str(path).split("/"):
        try:
            layer = layer.get_layer(part)
        except (ValueError, AttributeError) as error:
            raise ValueError(
                f"Layer path {path!r} not found in model "
                f"{getattr(model, 'name', model)!r} (missing {part!r})."
            ) from error
    return layer


def try_find_layer(model, path):
    """`find_layer`, or None when the path is not in the model."""
    try:
        return find_layer(model, path)
    except ValueError:
        return None


def layer_by_name(model, name):
    """`find_layer` in the graph view of `model` (custom layers seen
    through), where the data-driven criteria read their tensors."""
    return find_layer(kg.as_functional(model), name)


def check_functional(model, argument="model"):
    """Raises unless `model` is a built functional or Sequential model.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for an unbuilt Sequential or a subclassed model.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{argument}` must be a keras.Model. "
            f"Received: {argument} of type {type(model).__name__}"
        )
    if kg.is_sequential(model):
        if not model.built or not getattr(model, "inputs", None):
            raise ValueError(
                f"`{argument}` is a Sequential model that is not built: "
                "give it a `keras.Input` (or call `build`) first. "
                f"Received: {argument}={model.name!r}"
            )
        return
    if not kg.is_functional(model):
        raise ValueError(
            f"`{argument}` must be a functional or Sequential model; "
            "subclassed models have no graph to rebuild. "
            f"Received: {argument}={model.name!r} of type "
            f"{type(model).__name__}"
        )


def clone_layer_from_config(layer, cls=None, config=None):
    """A new `cls` (default: the layer's class) built from `config`.

    A `keras.layers.Lambda` cloned as a Lambda is the layer object itself:
    rebuilding it would deserialise its Python function, which Keras' safe
    mode refuses, and a Lambda has no weights of its own to copy or mask
    (as in channel pruning's rebuild, `pruning/_surgery.py`).

    Raises:
        ValueError: naming the layer when its config cannot rebuild it.
    """
    cls = cls or layer.__class__
    if isinstance(layer, keras.layers.Lambda) and cls is layer.__class__:
        return layer
    config = layer.get_config() if config is None else config
    try:
        return cls.from_config(config)
    except Exception as error:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot be "
            f"re-created from its config as {cls.__name__}: {error}. Give "
            "the layer a complete `get_config`."
        ) from error


def clone_model(
    model,
    clone_function,
    call_function=None,
    keep_input_names=False,
    plain=True,
):
    """Clones a functional or Sequential model, nested models included.

    Args:
        model: a functional or Sequential model.
        clone_function: `layer -> new layer`, applied to every layer (those
            of nested models too), as in `keras.models.clone_model`.
        call_function: optional `(layer, *args, **kwargs) -> outputs`, as
            in `keras.models.clone_model` (inserts layers around a call).
        keep_input_names: name the new inputs after the input layers of
            `model` (`clone_model` names them after their symbolic
            tensors, e.g. "keras_tensor"); functional models only.
        plain: return a plain functional `keras.Model` named like `model`
            (`clone_model` keeps a Sequential or functional subclass).

    Returns:
        The clone (new layers, weights not copied).
    """
    input_tensors = None
    if keep_input_names and not kg.is_sequential(model):
        input_tensors = keras.tree.map_structure(
            lambda x: keras.Input(
                batch_shape=x.shape,
                dtype=x.dtype,
                sparse=getattr(x, "sparse", False),
                name=kg.tensor_producer(x)[0].name,
            ),
            model.input,
        )
    clone = keras.models.clone_model(
        model,
        input_tensors=input_tensors,
        clone_function=clone_function,
        call_function=call_function,
        recursive=True,
    )
    if not plain:
        return clone
    if kg.is_sequential(clone):
        # A Sequential model has one input and one output.
        inputs, outputs = clone.inputs[0], clone.outputs[0]
    else:
        inputs, outputs = clone.input, clone.output
    return keras.Model(inputs, outputs, name=model.name)


def short_name(variable):
    """The variable's name without its layer path ("kernel")."""
    return variable.name.split("/")[-1]


def copy_weights(source, target):
    """Copies `source`'s variables into `target`'s variables of the same name.

    Variables with the same short name are matched in order. `target` may
    have extra variables (masks), which are left as they are.

    Raises:
        ValueError: if `target` lacks one of `source`'s variables.
    """
    by_name = {}
    for variable in target.weights:
        by_name.setdefault(short_name(variable), []).append(variable)
    for variable in source.weights:
        candidates = by_name.get(short_name(variable))
        if not candidates:
            raise ValueError(
                f"Cannot copy weight {short_name(variable)!r} of layer "
                f"{source.name!r}: the rebuilt layer has no such weight."
            )
        candidates.pop(0).assign(np.asarray(variable.numpy()))


def random_inputs(model, batch_size=2, seed=0, unknown_dim=16, int_high=8):
    """A seeded random batch for every input of `model`.

    Float inputs are standard normal, integer inputs uniform in
    `[0, int_high)`, boolean inputs True (a padding mask that keeps every
    position).

    Args:
        model: a functional or Sequential model.
        batch_size: size of the batch axis.
        seed: a `numpy.random.Generator`, an int seed, or None.
        unknown_dim: the size used for every other unknown (`None`) axis.
        int_high: upper bound (excluded) of integer inputs.

    Returns:
        A list of NumPy arrays, one per model input.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [batch_size] + [
            unknown_dim if d is None else int(d) for d in tensor.shape[1:]
        ]
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        if dtype == "bool":
            arrays.append(np.ones(shape, dtype))
        elif "int" in dtype:
            arrays.append(rng.integers(0, int_high, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def model_input(model, arrays):
    """`arrays` (one per input) in the structure `model` takes: one array,
    a list or a dict."""
    structure = model.input
    if isinstance(structure, dict) or (
        isinstance(structure, (list, tuple)) and len(arrays) > 1
    ):
        return keras.tree.pack_sequence_as(structure, arrays)
    return arrays[0] if len(arrays) == 1 else arrays


def check_same_outputs(reference, candidate, rtol=1e-4, atol=1e-4):
    """Raises if the two models' inference outputs differ on random inputs.

    The tolerance is `atol * max(1, max |reference output|) + rtol * |e|`.

    Raises:
        RuntimeError: naming the largest difference and the shapes.
    """
    x = model_input(reference, random_inputs(reference, int_high=1))
    expected = keras.tree.flatten(reference(x, training=False))
    actual = keras.tree.flatten(candidate(x, training=False))
    for e, a in zip(expected, actual):
        e = keras.ops.convert_to_numpy(e)
        a = keras.ops.convert_to_numpy(a)
        scale = max(1.0, float(np.max(np.abs(e))) if e.size else 1.0)
        if e.shape != a.shape or not np.allclose(
            e, a, rtol=rtol, atol=atol * scale
        ):
            diff = float(np.max(np.abs(e - a))) if e.shape == a.shape else None
            raise RuntimeError(
                "The stripped model does not compute what the pruned model "
                f"computes (max abs difference {diff}, shapes {e.shape} vs "
                f"{a.shape}). Please report this with the model summary."
            )


# Sizes given to undefined (`None`) input axes when no `input_shape` is
# passed: keras.applications' default image side, and a common sequence
# length of text backbones (token ids, masks, per-step features).
DEFAULT_IMAGE_SIDE = 224
DEFAULT_SEQUENCE_LENGTH = 128


def _default_shape(tensor):
    """A concrete shape for `tensor` (no batch axis), or None if unguessable.

    Integer and boolean inputs are token ids or masks: every undefined axis
    is a sequence axis. Float inputs need their last (channel / feature)
    axis defined; an undefined axis of a `(steps, features)` input is a
    sequence axis, those of an `(height, width, channels)` input are image
    sides.
    """
    shape = tuple(tensor.shape[1:])
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if dtype == "bool" or "int" in dtype:
        return tuple(DEFAULT_SEQUENCE_LENGTH if d is None else d for d in shape)
    if not shape or shape[-1] is None or len(shape) not in (2, 3):
        return None
    side = DEFAULT_SEQUENCE_LENGTH if len(shape) == 2 else DEFAULT_IMAGE_SIDE
    return tuple(side if d is None else d for d in shape)


def _given_shapes(model, input_shape, argument):
    """`input_shape` as one shape per `model.inputs` (None: not given)."""
    inputs = model.inputs
    if input_shape is None:
        return [None] * len(inputs)
    if isinstance(input_shape, dict):
        names = [t.name for t in inputs]
        if isinstance(model.input, dict):
            names = list(model.input)
            tensors = list(model.input.values())
            by_name = {id(t): n for n, t in zip(names, tensors)}
            names = [by_name.get(id(t), t.name) for t in inputs]
        unknown = sorted(set(input_shape) - set(names))
        if unknown:
            raise ValueError(
                f"`{argument}` names inputs the model does not have: "
                f"{unknown} (the model's inputs: {names}). Received: "
                f"{argument}={input_shape!r}"
            )
        return [input_shape.get(n) for n in names]
    shapes = list(input_shape)
    if len(inputs) == 1 and (
        not shapes or not isinstance(shapes[0], (list, tuple))
    ):
        return [tuple(shapes)]
    if len(shapes) != len(inputs):
        raise ValueError(
            f"`{argument}` must give one shape per model input "
            f"({len(inputs)}). Received: {argument}={input_shape!r}"
        )
    return shapes


def concrete_input_shapes(model, input_shape=None, function="this function"):
    """One concrete shape (no batch axis) per input of `model`.

    Args:
        model: a functional or Sequential model.
        input_shape: optional shape without the batch axis (single-input
            models), a list of them (one per input) or a dict input name ->
            shape. It fills the undefined axes; a defined axis must agree.
            Inputs it leaves out get defaults for their undefined axes:
            `DEFAULT_SEQUENCE_LENGTH` for sequence axes (integer inputs and
            `(steps, features)` inputs) and `DEFAULT_IMAGE_SIDE` for the
            sides of `(height, width, channels)` inputs.
        function: name of the public function taking `input_shape`, shown
            in the errors.

    Returns:
        A list of int tuples, one per `model.inputs`.

    Raises:
        ValueError: naming `input_shape` when it does not fit the inputs or
            when an input's undefined axes have no sensible default.
    """
    argument = "input_shape"
    shapes = []
    for tensor, given in zip(
        model.inputs, _given_shapes(model, input_shape, argument)
    ):
        defined = tuple(tensor.shape[1:])
        if given is None:
            shape = _default_shape(tensor)
            if shape is None:
                raise ValueError(
                    f"Input {tensor.name!r} has the undefined shape "
                    f"{(None,) + defined} and no default size fits it. "
                    f"Pass `{argument}=` (without the batch axis) to "
                    f"{function}. Received: {argument}={input_shape!r}"
                )
            shapes.append(shape)
            continue
        given = tuple(given)
        bad = len(given) != len(defined) or any(
            not isinstance(g, int) or isinstance(g, bool) or g < 1
            for g in given
        )
        if bad or any(d is not None and d != g for d, g in zip(defined, given)):
            raise ValueError(
                f"`{argument}` must fill the undefined axes of input "
                f"{tensor.name!r} (shape {(None,) + defined} with the batch "
                "axis) with positive ints and agree with its defined "
                f"axes. Received: {argument}={input_shape!r}"
            )
        shapes.append(given)
    return shapes


def with_static_inputs(model, input_shape=None, function="this function"):
    """`model` with every non-batch input axis defined.

    A model whose inputs are all defined is returned as is. Otherwise the
    result is a new functional model that calls `model` (sharing its layers
    and weights; `model` is not modified) on inputs of the shapes
    `concrete_input_shapes` gives, with the same input names and structure.

    Args:
        model: a functional or Sequential model.
        input_shape: see `concrete_input_shapes`.
        function: see `concrete_input_shapes`.

    Returns:
        A model with static non-batch input shapes.

    Raises:
        ValueError: from `concrete_input_shapes`.
    """
    tensors = model.inputs
    if input_shape is None and all(
        d is not None for t in tensors for d in t.shape[1:]
    ):
        return model
    shapes = concrete_input_shapes(model, input_shape, function)
    new = {
        id(t): keras.Input(
            shape=shape,
            dtype=t.dtype,
            name=t.name,
        )
        for t, shape in zip(tensors, shapes)
    }
    structure = model.input
    if kg.is_sequential(model) or not isinstance(structure, (dict, list)):
        structure = tensors[0] if len(tensors) == 1 else tensors
    inputs = keras.tree.map_structure(lambda t: new[id(t)], structure)
    return keras.Model(inputs, model(inputs), name=f"{model.name}_static")
