"""Gradients, activation gradients and Hessian-vector products of a model.

This is the project's one gradient helper: every criterion that needs
derivatives (Taylor, SNIP, RigL, SOSP, SInGE, Hessian spectral radius,
gradient-matrix redundancy) calls these functions instead of opening a
`GradientTape` itself.

The computations are written once, with `keras.ops` and
`keras.StatelessScope` (the model runs on substituted variable values, so
its state is never changed), on top of a small per-backend automatic
differentiation adapter with three operations: reverse-mode `grad`,
forward-mode `jvp` and `compile`. Adapters exist for TensorFlow
(`GradientTape`, `ForwardAccumulator`, `tf.function`), JAX
(`jax.value_and_grad`, `jax.jvp`, `jax.jit`) and PyTorch
(`torch.autograd.grad`, the double-backward forward product, eager). On any
other backend the functions raise `NotImplementedError` naming the backend;
`check_backend_support` refuses a gradient criterion up front. The backend
libraries are imported lazily, inside the adapters.

Conventions shared by all functions:

* `loss` may be a Keras loss name (`"sparse_categorical_crossentropy"`), a
  `keras.losses.Loss` instance or class, or any callable
  `loss(y_true, y_pred)` written with `keras.ops`. A non-scalar result is
  averaged, so the value differentiated is always the mean loss over the
  batch (regularisation losses in `model.losses` are not added).
* `x` is one batch, in any structure `model(x)` accepts; `y` is its target.
* Results are NumPy arrays. A variable the loss does not depend on gets a
  zero gradient (not `None`).
* `training=True` runs the model in training mode (dropout, batch
  statistics in BatchNormalization); the state updates this makes (BN
  moving averages, ...) are discarded: these helpers never change the
  model.

On TensorFlow and JAX the computations are compiled (`tf.function`,
`jax.jit`) and cached per model (weakly), so repeated calls on batches of
the same shape do not retrace.
"""

import collections
import inspect
import weakref

import keras
import numpy as np

SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")

_CACHE_SIZE = 16
_FUNCTION_CACHE = weakref.WeakKeyDictionary()

# Criteria and weight-sparsity methods that differentiate the loss through
# this module (their registry aliases).
GRADIENT_CRITERIA = frozenset(
    {
        "taylor",
        "taylor_activation",
        "taylor_so",
        "sosp",
        "singe",
        "hessian_spectral",
        "snip",
        "rigl",
    }
)


def resolve_loss(loss):
    """Turns a Keras loss name, class, instance or callable into a callable.

    Args:
        loss: a loss name understood by `keras.losses.get`, a
            `keras.losses.Loss` subclass or instance, or a callable
            `loss(y_true, y_pred)`.

    Returns:
        A callable `loss(y_true, y_pred)`.

    Raises:
        ValueError: if `loss` is None or an unknown name.
        TypeError: if `loss` is not a string or a callable.

    Example:
        >>> fn = resolve_loss("mse")
        >>> float(fn(np.zeros((2, 1)), np.ones((2, 1))).numpy().mean())
        1.0
    """
    if loss is None:
        raise ValueError(
            "`loss` is required to compute gradients. Received: loss=None"
        )
    if isinstance(loss, str):
        try:
            fn = keras.losses.get(loss)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"`loss` is not a known Keras loss. Received: loss={loss!r}"
            ) from error
        if fn is None:
            raise ValueError(
                f"`loss` is not a known Keras loss. Received: loss={loss!r}"
            )
        if isinstance(fn, type):
            fn = fn()
        return fn
    if isinstance(loss, type) and issubclass(loss, keras.losses.Loss):
        return loss()
    if callable(loss):
        return loss
    raise TypeError(
        "`loss` must be a Keras loss name, a keras.losses.Loss or a callable. "
        f"Received: loss={loss!r}"
    )


def _unsupported_message(what, backend):
    return (
        f"{what} needs automatic differentiation, which keras_neuronprune "
        f"supports on the {', '.join(SUPPORTED_BACKENDS)} backends. "
        f"Received: backend={backend!r}. Set KERAS_BACKEND to one of "
        f"{', '.join(SUPPORTED_BACKENDS)}, or use a criterion that needs no "
        "gradients (e.g. 'l1', 'l2', 'bn_scale', 'rni')."
    )


def _criterion_alias(criterion):
    if isinstance(criterion, str):
        return criterion.lower()
    alias = getattr(criterion, "alias", None)
    if isinstance(alias, str):
        return alias.lower()
    cls = criterion if isinstance(criterion, type) else type(criterion)
    return cls.__name__.lower()


def needs_gradients(criterion):
    """Whether a criterion (name, class or instance) differentiates the loss.

    Args:
        criterion: a registry alias (`"taylor"`), a criterion or sparsity
            method class or instance.

    Returns:
        True for the criteria and methods that call this module.
    """
    flag = getattr(criterion, "requires_gradients", None)
    if isinstance(flag, bool):
        return flag
    alias = _criterion_alias(criterion)
    if alias in GRADIENT_CRITERIA:
        return True
    module = getattr(
        criterion if isinstance(criterion, type) else type(criterion),
        "__module__",
        "",
    )
    return module.endswith(
        (
            "._taylor_base",
            ".taylor",
            ".taylor_activation",
            ".taylor_second_order",
            ".sosp",
            ".singe",
            ".hessian_spectral",
            ".snip_method",
            ".rigl_method",
        )
    )


def check_backend_support(criterion, backend=None):
    """Refuses a gradient criterion on a backend without autodiff support.

    `prune_structured` and `prune_weights` call this when they resolve the
    criterion, so an unsupported pair fails before training starts rather
    than at the first pruning step.

    Args:
        criterion: a criterion name, class or instance (or a sparsity
            method).
        backend: the backend name; None reads `keras.backend.backend()`.

    Raises:
        ValueError: naming the criterion, the backend and the alternatives,
            when `criterion` needs gradients and `backend` is not one of
            `SUPPORTED_BACKENDS`.

    Example:
        >>> check_backend_support("taylor")  # passes on TF, JAX and torch
        >>> check_backend_support("taylor", backend="numpy")
        Traceback (most recent call last):
        ValueError: criterion 'taylor' needs automatic differentiation, ...
    """
    if backend is None:
        backend = keras.backend.backend()
    if backend in SUPPORTED_BACKENDS or not needs_gradients(criterion):
        return
    raise ValueError(
        _unsupported_message(
            f"criterion {_criterion_alias(criterion)!r}", backend
        )
    )


class _TensorFlowAutodiff:
    name = "tensorflow"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf

    def compile(self, fn):
        return self.tf.function(fn, reduce_retracing=True)

    def grad(self, f, primals, create_graph=False):
        tf = self.tf
        with tf.GradientTape() as tape:
            tape.watch(primals)
            value, aux = f(primals)
        grads = tape.gradient(
            value, primals, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return value, aux, list(grads)

    def jvp(self, f, primals, tangents):
        tf = self.tf
        with tf.autodiff.ForwardAccumulator(primals, tangents) as acc:
            outputs = f(primals)
        return outputs, [
            acc.jvp(o, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            for o in outputs
        ]


class _JaxAutodiff:
    name = "jax"

    def __init__(self):
        import jax

        self.jax = jax

    def compile(self, fn):
        return self.jax.jit(fn)

    def grad(self, f, primals, create_graph=False):
        (value, aux), grads = self.jax.value_and_grad(f, has_aux=True)(
            list(primals)
        )
        return value, aux, list(grads)

    def jvp(self, f, primals, tangents):
        outputs, jv = self.jax.jvp(f, (list(primals),), (list(tangents),))
        return list(outputs), list(jv)


class _TorchAutodiff:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def compile(self, fn):
        # Eager: torch.compile would add minutes of warm-up for the few
        # batches a criterion scores.
        return fn

    def _leaves(self, primals):
        return [
            p if p.requires_grad else p.detach().requires_grad_(True)
            for p in primals
        ]

    def grad(self, f, primals, create_graph=False):
        torch = self.torch
        primals = self._leaves(primals)
        with torch.enable_grad():
            value, aux = f(primals)
            if value.requires_grad:
                grads = torch.autograd.grad(
                    value, primals, create_graph=create_graph, allow_unused=True
                )
            else:
                grads = [None] * len(primals)
        grads = [
            torch.zeros_like(p) if g is None else g
            for g, p in zip(grads, primals)
        ]
        if not create_graph:
            value = value.detach()
            aux = [a.detach() for a in aux]
        return value, aux, grads

    def jvp(self, f, primals, tangents):
        # J v = d/du (J^T u . v): two reverse passes, which every torch op
        # supports (forward-mode AD does not cover all of them).
        torch = self.torch
        primals = [p.detach().requires_grad_(True) for p in primals]
        with torch.enable_grad():
            outputs = f(primals)
            us = [torch.zeros_like(o, requires_grad=True) for o in outputs]
            vjp = torch.autograd.grad(
                outputs,
                primals,
                grad_outputs=us,
                create_graph=True,
                allow_unused=True,
            )
            pairs = [(g, t) for g, t in zip(vjp, tangents) if g is not None]
            if pairs and any(g.requires_grad for g, _ in pairs):
                jv = torch.autograd.grad(
                    [g for g, _ in pairs],
                    us,
                    grad_outputs=[t for _, t in pairs],
                    allow_unused=True,
                )
            else:
                jv = [None] * len(us)
        jv = [
            torch.zeros_like(o) if j is None else j for j, o in zip(jv, outputs)
        ]
        return [o.detach() for o in outputs], jv


_ADAPTERS = {
    "tensorflow": _TensorFlowAutodiff,
    "jax": _JaxAutodiff,
    "torch": _TorchAutodiff,
}
_ADAPTER_CACHE = {}


def _autodiff(function_name):
    backend = keras.backend.backend()
    if backend not in _ADAPTERS:
        raise NotImplementedError(
            _unsupported_message(
                f"`keras_neuronprune.utils.{function_name}`", backend
            )
        )
    if backend not in _ADAPTER_CACHE:
        _ADAPTER_CACHE[backend] = _ADAPTERS[backend]()
    return _ADAPTER_CACHE[backend]


def _check_variables(variables, argument="variables"):
    if variables is None or len(variables) == 0:
        raise ValueError(
            f"`{argument}` must be a non-empty list of variables. "
            f"Received: {argument}={variables!r}"
        )
    variables = list(variables)
    for v in variables:
        if not hasattr(v, "shape") or not hasattr(v, "assign"):
            raise TypeError(
                f"`{argument}` must contain Keras variables. "
                f"Received an element of type {type(v).__name__}"
            )
    return variables


def _cached(model, key, build):
    per_model = _FUNCTION_CACHE.setdefault(model, collections.OrderedDict())
    if key not in per_model:
        if len(per_model) >= _CACHE_SIZE:
            per_model.popitem(last=False)
        per_model[key] = build()
    per_model.move_to_end(key)
    return per_model[key]


def _mean(value):
    value = keras.ops.convert_to_tensor(value)
    if len(value.shape):
        value = keras.ops.mean(value)
    return value


def _to_tensors(structure):
    return keras.tree.map_structure(keras.ops.convert_to_tensor, structure)


def _as_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def _frozen(v):
    return keras.ops.stop_gradient(keras.ops.convert_to_tensor(v.value))


def _other_state(model, variables):
    """The model's variables not in `variables`, in a stable order."""
    seen = {id(v) for v in variables}
    others = []
    for v in model.variables:
        if id(v) not in seen:
            seen.add(id(v))
            others.append(v)
    return others


def _state_key(model, variables):
    return (tuple(id(v) for v in variables), len(model.variables))


def _dot(tensors, others):
    total = None
    for a, b in zip(tensors, others):
        term = keras.ops.sum(a * keras.ops.cast(b, a.dtype))
        total = term if total is None else total + term
    return total


class _Runner:
    """Runs a model on substituted variable values (stateless)."""

    def __init__(self, model, variables):
        self.model_ref = weakref.ref(model)
        self.variables = list(variables)
        self.others = _other_state(model, variables)

    def scope(self, primals, other_values):
        mapping = list(zip(self.variables, primals))
        mapping += list(zip(self.others, other_values))
        return keras.StatelessScope(state_mapping=mapping)

    def other_values(self):
        return [_frozen(v) for v in self.others]

    def primal_values(self):
        return [_frozen(v) for v in self.variables]


def loss_and_gradients(model, variables, x, y, loss, training=False):
    """Mean loss of one batch and its gradient w.r.t. `variables`.

    Args:
        model: a Keras model.
        variables: list of Keras variables (of `model` or not, trainable or
            not, e.g. gates); `None` means `model.trainable_variables`.
        x: one input batch.
        y: the batch's targets.
        loss: Keras loss name, instance or callable (see module docstring).
        training: run the model in training mode (state updates are
            discarded).

    Returns:
        `(loss_value, grads)`: the mean loss as a Python float, and a list of
        NumPy arrays, one per variable, with the variables' shapes.

    Raises:
        ValueError: if `variables` is empty or `loss` is missing.
        NotImplementedError: on a backend without an autodiff adapter.

    Example:
        >>> value, grads = loss_and_gradients(
        ...     model, model.trainable_variables, x, y, "mse")
    """
    ad = _autodiff("loss_and_gradients")
    if variables is None:
        variables = model.trainable_variables
    variables = _check_variables(variables)
    loss_fn = resolve_loss(loss)

    def build():
        runner = _Runner(model, variables)

        def fn(primal_values, other_values, x, y):
            def f(primals):
                with runner.scope(primals, other_values):
                    pred = runner.model_ref()(x, training=training)
                    value = _mean(loss_fn(y, pred))
                return value, []

            value, _, grads = ad.grad(f, primal_values)
            return value, grads

        return runner, ad.compile(fn)

    key = ("grad", _state_key(model, variables), id(loss_fn), training)
    runner, fn = _cached(model, key, build)
    value, grads = fn(
        runner.primal_values(),
        runner.other_values(),
        _to_tensors(x),
        _to_tensors(y),
    )
    return float(_as_numpy(value)), [_as_numpy(g) for g in grads]


def _layer_output(model, name):
    if "/" in name:
        raise ValueError(
            "`layer_names` must name top-level layers of the model; layers "
            "inside nested models are not supported by "
            f"activations_and_gradients. Received: layer_names entry {name!r}"
        )
    try:
        layer = model.get_layer(name)
    except ValueError as error:
        raise ValueError(
            f"`layer_names` contains a layer that is not in the model. "
            f"Received: {name!r}"
        ) from error
    try:
        return layer.output
    except (AttributeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"Layer {name!r} has no single output tensor in the model graph "
            "(is it shared, or the model not functional?); "
            "activations_and_gradients needs one."
        ) from error


_TRAINING_ARG = {}


def _accepts_training(operation):
    cache = _TRAINING_ARG
    key = type(operation)
    if key not in cache:
        call = getattr(operation, "call", None)
        try:
            params = inspect.signature(call).parameters
        except (TypeError, ValueError):
            params = {}
        cache[key] = "training" in params
    return cache[key]


def _flat_inputs(functional, x):
    flat = keras.tree.flatten(x)
    specs = list(functional.inputs)
    if len(flat) != len(specs):
        raise ValueError(
            f"`x` must hold one array per model input ({len(specs)}). "
            f"Received: {len(flat)} arrays"
        )
    return [
        keras.ops.convert_to_tensor(a, dtype=s.dtype)
        for a, s in zip(flat, specs)
    ]


def _own_graph(model):
    """The model's own functional graph (its layers, nothing inlined)."""
    if isinstance(model, keras.Sequential):
        if not model.built or not getattr(model, "inputs", None):
            raise ValueError(
                f"Sequential model {model.name!r} is not built: give it a "
                "`keras.Input(shape)` first."
            )
        # A functional model over the same layer objects: public API only.
        return keras.Model(model.inputs, model.outputs)
    if not getattr(model, "outputs", None):
        raise ValueError(
            "activations_and_gradients needs a functional or Sequential "
            f"model. Received: {type(model).__name__}"
        )
    return model


def _run_with_taps(functional, layers, x, taps, training):
    """Runs the graph, adding `taps[i]` to the output of `layers[i]`.

    The gradient of the loss w.r.t. a zero tap is the gradient w.r.t. the
    layer's output, on every backend (JAX cannot watch intermediate values
    the way a `GradientTape` does). Returns `(outputs, activations)`.
    """
    from keras_neuronprune.graph._keras_graph import run_through_graph

    index = {id(layer): i for i, layer in enumerate(layers)}
    acts = [None] * len(layers)

    def operation_fn(operation):
        def call(*args, **kwargs):
            if training is not None and _accepts_training(operation):
                kwargs["training"] = training
            out = operation(*args, **kwargs)
            i = index.get(id(operation))
            if i is not None:
                acts[i] = out
                if taps is not None:
                    out = out + taps[i]
            return out

        return call

    outputs = run_through_graph(
        functional, _flat_inputs(functional, x), operation_fn
    )
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    return outputs, acts


def _tap_shapes(functional, layers, x, training):
    batch = keras.tree.flatten(x)[0].shape[0]
    shapes = []
    for layer in layers:
        shape = tuple(layer.output.shape)
        if any(d is None for d in shape[1:]):
            shapes = None
            break
        shapes.append(((batch,) + shape[1:], layer.output.dtype))
    if shapes is not None:
        return shapes
    # Dynamic spatial sizes: one forward pass finds this batch's shapes.
    with keras.StatelessScope():
        _, acts = _run_with_taps(functional, layers, x, None, training)
    return [(tuple(a.shape), a.dtype) for a in acts]


def activations_and_gradients(model, layer_names, x, y, loss, training=False):
    """Outputs of named layers and the loss gradient w.r.t. those outputs.

    The model's graph is re-run with a zero tensor added to each named
    layer's output; the loss gradient w.r.t. these zeros is the gradient
    w.r.t. the outputs. The loss is the batch mean, so each example's
    gradient is `1 / batch_size` times the gradient of its own loss.

    Args:
        model: a functional (or built Sequential) Keras model.
        layer_names: names of top-level layers of `model`.
        x: one input batch.
        y: the batch's targets.
        loss: Keras loss name, instance or callable.
        training: run the model in training mode (state updates are
            discarded).

    Returns:
        `(acts, grads)`: two dicts layer name -> NumPy array with the shape
        of the layer's output for this batch.

    Raises:
        ValueError: for unknown or shared layers, or a missing `loss`.
        NotImplementedError: on a backend without an autodiff adapter.

    Example:
        >>> acts, grads = activations_and_gradients(
        ...     model, ["conv1"], x, y, "sparse_categorical_crossentropy")
        >>> taylor = np.abs((acts["conv1"] * grads["conv1"]).mean((1, 2)))
    """
    ad = _autodiff("activations_and_gradients")
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    layer_names = list(layer_names)
    if not layer_names:
        raise ValueError(
            "`layer_names` must name at least one layer. "
            f"Received: layer_names={layer_names!r}"
        )
    loss_fn = resolve_loss(loss)
    for name in layer_names:
        _layer_output(model, name)
    layers = [model.get_layer(name) for name in layer_names]

    def build():
        runner = _Runner(model, [])
        graph = _own_graph(model)
        graph_ref = weakref.ref(graph) if graph is model else lambda: graph

        def fn(other_values, x, y, taps):
            def f(tap_values):
                with runner.scope([], other_values):
                    pred, acts = _run_with_taps(
                        graph_ref(), layers, x, tap_values, training
                    )
                    value = _mean(loss_fn(y, pred))
                return value, acts

            _, acts, grads = ad.grad(f, taps)
            return acts, grads

        return runner, graph_ref, ad.compile(fn)

    key = ("acts", tuple(layer_names), id(loss_fn), training, len(layers))
    runner, graph, fn = _cached(model, key, build)
    x, y = _to_tensors(x), _to_tensors(y)
    taps = [
        keras.ops.zeros(shape, dtype=dtype)
        for shape, dtype in _tap_shapes(graph(), layers, x, training)
    ]
    acts, grads = fn(runner.other_values(), x, y, taps)
    return (
        {n: _as_numpy(a) for n, a in zip(layer_names, acts)},
        {n: _as_numpy(g) for n, g in zip(layer_names, grads)},
    )


def hessian_vector_product(
    model, variables, vectors, x, y, loss, gauss_newton=False
):
    """Hessian (or Gauss-Newton matrix) of the mean loss times a vector.

    Exact form (`gauss_newton=False`): `H v` by double backpropagation,
    `d/dtheta (grad L(theta) . v)`.

    Gauss-Newton form (`gauss_newton=True`): `J^T H_out J v`, where `J` is
    the Jacobian of the model output w.r.t. `variables` and `H_out` the
    Hessian of the loss w.r.t. the model output. `J v` is one forward-mode
    product, `H_out (J v)` a double backprop through the loss alone and
    `J^T (.)` one reverse-mode product. The matrix is positive
    semi-definite when the loss is convex in the model output (cross-entropy
    on logits, mean squared error); with a softmax output and
    `from_logits=False` it is taken w.r.t. the probabilities. The model runs
    in inference mode.

    Args:
        model: a Keras model.
        variables: list of Keras variables; `None` means
            `model.trainable_variables`.
        vectors: list of arrays, one per variable, with the same shapes.
        x: one input batch.
        y: the batch's targets.
        loss: Keras loss name, instance or callable.
        gauss_newton: use the Gauss-Newton matrix instead of the Hessian.

    Returns:
        List of NumPy arrays with the variables' shapes.

    Raises:
        ValueError: if `vectors` do not match `variables`.
        NotImplementedError: on a backend without an autodiff adapter.

    Example:
        >>> hv = hessian_vector_product(
        ...     model, None, [np.ones(v.shape) for v in
        ...     model.trainable_variables], x, y, "mse")

    Reference:
        Pearlmutter, "Fast exact multiplication by the Hessian", 1994;
        Schraudolph, "Fast curvature matrix-vector products for second-order
        gradient descent", 2002.
    """
    ad = _autodiff("hessian_vector_product")
    if variables is None:
        variables = model.trainable_variables
    variables = _check_variables(variables)
    _, _, hv = _curvature(
        ad, model, variables, vectors, x, y, loss, gauss_newton
    )
    return hv


def gradient_and_hessian_vector_product(
    model, variables, vectors, x, y, loss, gauss_newton=False
):
    """Mean loss, its gradient and a Hessian-vector product in one pass.

    Same arguments as `hessian_vector_product`; sharing the forward pass
    makes this cheaper than calling `loss_and_gradients` and
    `hessian_vector_product` separately (SOSP needs both).

    Returns:
        `(loss_value, grads, hv)`: a float and two lists of NumPy arrays
        with the variables' shapes.
    """
    ad = _autodiff("gradient_and_hessian_vector_product")
    if variables is None:
        variables = model.trainable_variables
    variables = _check_variables(variables)
    return _curvature(ad, model, variables, vectors, x, y, loss, gauss_newton)


def _check_vectors(variables, vectors):
    if vectors is None or len(vectors) != len(variables):
        raise ValueError(
            "`vectors` must hold one array per variable "
            f"({len(variables)}). Received: "
            f"{None if vectors is None else len(vectors)} arrays"
        )
    vectors = [np.asarray(t) for t in vectors]
    for v, t in zip(variables, vectors):
        if tuple(t.shape) != tuple(v.shape):
            raise ValueError(
                f"`vectors` must match the variables' shapes. Variable "
                f"{v.path if hasattr(v, 'path') else v.name} has shape "
                f"{tuple(v.shape)}; received a vector of shape {t.shape}"
            )
    return vectors


def _exact_curvature(ad, runner, loss_fn):
    def fn(primal_values, other_values, x, y, tangents):
        def loss_of(primals):
            with runner.scope(primals, other_values):
                pred = runner.model_ref()(x, training=False)
                value = _mean(loss_fn(y, pred))
            return value, []

        def grad_dot(primals):
            value, _, grads = ad.grad(loss_of, primals, create_graph=True)
            return _dot(grads, tangents), [value] + list(grads)

        _, aux, hv = ad.grad(grad_dot, primal_values)
        return aux[0], aux[1:], hv

    return fn


def _gauss_newton_curvature(ad, runner, loss_fn):
    def fn(primal_values, other_values, x, y, tangents):
        structure = []

        def outputs_of(primals):
            with runner.scope(primals, other_values):
                pred = runner.model_ref()(x, training=False)
            structure[:] = [pred]
            return keras.tree.flatten(pred)

        tangents = [
            keras.ops.cast(t, p.dtype) for t, p in zip(tangents, primal_values)
        ]
        flat_out, jv = ad.jvp(outputs_of, primal_values, tangents)
        z = [keras.ops.stop_gradient(o) for o in flat_out]
        jv = [keras.ops.stop_gradient(j) for j in jv]

        def loss_of_outputs(outputs):
            pred = keras.tree.pack_sequence_as(structure[0], list(outputs))
            return _mean(loss_fn(y, pred)), []

        def hessian_dot(outputs):
            value, _, gz = ad.grad(loss_of_outputs, outputs, create_graph=True)
            return _dot(gz, jv), [value] + list(gz)

        # H_out (J v), and the loss gradient w.r.t. the outputs.
        _, aux, h_jv = ad.grad(hessian_dot, z)
        value, gz = aux[0], aux[1:]
        cotangents = [keras.ops.stop_gradient(c) for c in list(h_jv) + gz]

        def transpose(cotangent):
            def dot(primals):
                return _dot(outputs_of(primals), cotangent), []

            return ad.grad(dot, primal_values)[2]

        # J^T (.): one reverse pass per cotangent.
        hv = transpose(cotangents[: len(z)])
        grads = transpose(cotangents[len(z) :])
        return value, grads, hv

    return fn


def _curvature(ad, model, variables, vectors, x, y, loss, gauss_newton):
    vectors = _check_vectors(variables, vectors)
    loss_fn = resolve_loss(loss)

    def build():
        runner = _Runner(model, variables)
        make = _gauss_newton_curvature if gauss_newton else _exact_curvature
        return runner, ad.compile(make(ad, runner, loss_fn))

    key = ("hvp", _state_key(model, variables), id(loss_fn), gauss_newton)
    runner, fn = _cached(model, key, build)
    tangents = [
        keras.ops.convert_to_tensor(t, dtype=v.dtype)
        for t, v in zip(vectors, variables)
    ]
    value, grads, hv = fn(
        runner.primal_values(),
        runner.other_values(),
        _to_tensors(x),
        _to_tensors(y),
        tangents,
    )
    return (
        float(_as_numpy(value)),
        [_as_numpy(g) for g in grads],
        [_as_numpy(h) for h in hv],
    )
