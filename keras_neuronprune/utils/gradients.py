"""Gradients, activation gradients and Hessian-vector products of a model.

This is the project's one backend-specific gradient helper: every criterion
that needs derivatives (Taylor, SNIP, SOSP, SInGE, Hessian spectral radius,
gradient-matrix redundancy) calls these functions instead of opening a
`GradientTape` itself, so porting the library to JAX or PyTorch means adding
one implementation per function here.

Each public function dispatches on `keras.backend.backend()`. Only the
TensorFlow implementation exists; other backends raise
`NotImplementedError` naming the backend. TensorFlow is imported lazily,
inside the functions.

Conventions shared by all functions:

* `loss` may be a Keras loss name (`"sparse_categorical_crossentropy"`), a
  `keras.losses.Loss` instance or class, or any callable
  `loss(y_true, y_pred)`. A non-scalar result is averaged, so the value
  differentiated is always the mean loss over the batch (regularisation
  losses in `model.losses` are not added).
* `x` is one batch, in any structure `model(x)` accepts; `y` is its target.
* Results are NumPy arrays. A variable the loss does not depend on gets a
  zero gradient (not `None`).
* `training=True` runs the model in training mode (dropout, batch
  statistics in BatchNormalization) but the model's non-trainable state
  (BN moving averages, ...) is restored afterwards: these helpers never
  change the model.

The TensorFlow computations are wrapped in `tf.function`s cached per model
(weakly), so repeated calls on batches of the same shape do not retrace.
"""

import collections
import weakref

import keras
import numpy as np

_CACHE_SIZE = 16
_FUNCTION_CACHE = weakref.WeakKeyDictionary()


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


def _backend_check(function_name):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise NotImplementedError(
            f"`keras_neuronprune.utils.{function_name}` is implemented for "
            f"the TensorFlow backend only. Received: backend={backend!r}. "
            "A JAX or PyTorch implementation can be added next to the "
            "TensorFlow one in keras_neuronprune/utils/gradients.py."
        )


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


def _raw_variable(v):
    # Keras 3 variables wrap a tf.Variable; tapes and forward accumulators
    # need the wrapped one.
    return v.value if isinstance(v, keras.Variable) else v


def _cached(model, key, build):
    per_model = _FUNCTION_CACHE.setdefault(model, collections.OrderedDict())
    if key not in per_model:
        if len(per_model) >= _CACHE_SIZE:
            per_model.popitem(last=False)
        per_model[key] = build()
    per_model.move_to_end(key)
    return per_model[key]


class _KeepState:
    """Restores the model's non-trainable state after a training-mode call."""

    def __init__(self, model, training):
        self.variables = list(model.non_trainable_variables) if training else []

    def __enter__(self):
        self.values = [np.array(v.numpy()) for v in self.variables]
        return self

    def __exit__(self, *exc):
        for v, value in zip(self.variables, self.values):
            v.assign(value)
        return False


def _mean(tf, value):
    value = tf.convert_to_tensor(value)
    if value.shape.rank:
        value = tf.reduce_mean(value)
    return value


def _zeros_for_none(tf, grads, variables):
    return [
        tf.zeros(v.shape, v.dtype) if g is None else g
        for g, v in zip(grads, variables)
    ]


def _as_numpy(value):
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def _output_structure(outputs):
    return outputs[0] if len(outputs) == 1 else list(outputs)


def loss_and_gradients(model, variables, x, y, loss, training=False):
    """Mean loss of one batch and its gradient w.r.t. `variables`.

    Args:
        model: a Keras model.
        variables: list of Keras variables of `model` (trainable or not,
            e.g. gates); `None` means `model.trainable_variables`.
        x: one input batch.
        y: the batch's targets.
        loss: Keras loss name, instance or callable (see module docstring).
        training: run the model in training mode (its state is restored).

    Returns:
        `(loss_value, grads)`: the mean loss as a Python float, and a list of
        NumPy arrays, one per variable, with the variables' shapes.

    Raises:
        ValueError: if `variables` is empty or `loss` is missing.
        NotImplementedError: on a backend other than TensorFlow.

    Example:
        >>> value, grads = loss_and_gradients(
        ...     model, model.trainable_variables, x, y, "mse")
    """
    _backend_check("loss_and_gradients")
    if variables is None:
        variables = model.trainable_variables
    variables = _check_variables(variables)
    loss_fn = resolve_loss(loss)
    import tensorflow as tf

    def build():
        raw = [_raw_variable(v) for v in variables]
        # A weak reference: the cache is keyed weakly by the model, and a
        # strong one here would keep every model ever scored alive.
        model_ref = weakref.ref(model)

        @tf.function(reduce_retracing=True)
        def fn(x, y):
            with tf.GradientTape() as tape:
                tape.watch(raw)
                pred = model_ref()(x, training=training)
                value = _mean(tf, loss_fn(y, pred))
            grads = tape.gradient(value, raw)
            return value, _zeros_for_none(tf, grads, raw)

        return fn

    key = ("grad", tuple(id(v) for v in variables), id(loss_fn), training)
    fn = _cached(model, key, build)
    with _KeepState(model, training):
        value, grads = fn(x, y)
    return float(value), [_as_numpy(g) for g in grads]


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


def activations_and_gradients(model, layer_names, x, y, loss, training=False):
    """Outputs of named layers and the loss gradient w.r.t. those outputs.

    A functional sub-model exposing the model outputs and the named layers'
    outputs is built once per model (and cached); the loss is the batch
    mean, so each example's gradient is `1 / batch_size` times the gradient
    of its own loss.

    Args:
        model: a functional (or built Sequential) Keras model.
        layer_names: names of top-level layers of `model`.
        x: one input batch.
        y: the batch's targets.
        loss: Keras loss name, instance or callable.
        training: run the model in training mode (its state is restored).

    Returns:
        `(acts, grads)`: two dicts layer name -> NumPy array with the shape
        of the layer's output for this batch.

    Raises:
        ValueError: for unknown or shared layers, or a missing `loss`.
        NotImplementedError: on a backend other than TensorFlow.

    Example:
        >>> acts, grads = activations_and_gradients(
        ...     model, ["conv1"], x, y, "sparse_categorical_crossentropy")
        >>> taylor = np.abs((acts["conv1"] * grads["conv1"]).mean((1, 2)))
    """
    _backend_check("activations_and_gradients")
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    layer_names = list(layer_names)
    if not layer_names:
        raise ValueError(
            "`layer_names` must name at least one layer. "
            f"Received: layer_names={layer_names!r}"
        )
    loss_fn = resolve_loss(loss)
    import tensorflow as tf

    def build():
        outputs = [_layer_output(model, name) for name in layer_names]
        sub = keras.Model(model.inputs, list(model.outputs) + outputs)
        n_out = len(model.outputs)

        @tf.function(reduce_retracing=True)
        def fn(x, y):
            with tf.GradientTape() as tape:
                results = sub(x, training=training)
                acts = results[n_out:]
                tape.watch(acts)
                pred = _output_structure(results[:n_out])
                value = _mean(tf, loss_fn(y, pred))
            grads = tape.gradient(value, acts)
            grads = [
                tf.zeros_like(a) if g is None else g
                for g, a in zip(grads, acts)
            ]
            return acts, grads

        return fn

    key = ("acts", tuple(layer_names), id(loss_fn), training)
    fn = _cached(model, key, build)
    with _KeepState(model, training):
        acts, grads = fn(x, y)
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
    product (`tf.autodiff.ForwardAccumulator`), `H_out (J v)` a double
    backprop through the loss alone and `J^T (.)` one reverse-mode product,
    so the cost is about that of two gradients. The matrix is positive
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
        NotImplementedError: on a backend other than TensorFlow.

    Example:
        >>> hv = hessian_vector_product(
        ...     model, None, [np.ones(v.shape) for v in
        ...     model.trainable_variables], x, y, "mse")

    Reference:
        Pearlmutter, "Fast exact multiplication by the Hessian", 1994;
        Schraudolph, "Fast curvature matrix-vector products for second-order
        gradient descent", 2002.
    """
    _backend_check("hessian_vector_product")
    if variables is None:
        variables = model.trainable_variables
    variables = _check_variables(variables)
    _, _, hv = _curvature(model, variables, vectors, x, y, loss, gauss_newton)
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
    _backend_check("gradient_and_hessian_vector_product")
    if variables is None:
        variables = model.trainable_variables
    variables = _check_variables(variables)
    return _curvature(model, variables, vectors, x, y, loss, gauss_newton)


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


def _curvature(model, variables, vectors, x, y, loss, gauss_newton):
    vectors = _check_vectors(variables, vectors)
    loss_fn = resolve_loss(loss)
    import tensorflow as tf

    def build():
        raw = [_raw_variable(v) for v in variables]
        model_ref = weakref.ref(model)

        if not gauss_newton:

            @tf.function(reduce_retracing=True)
            def fn(x, y, tangents):
                with tf.GradientTape() as outer:
                    outer.watch(raw)
                    with tf.GradientTape() as inner:
                        inner.watch(raw)
                        pred = model_ref()(x, training=False)
                        value = _mean(tf, loss_fn(y, pred))
                    grads = _zeros_for_none(tf, inner.gradient(value, raw), raw)
                    dot = tf.add_n(
                        [
                            tf.reduce_sum(g * tf.cast(t, g.dtype))
                            for g, t in zip(grads, tangents)
                        ]
                    )
                hv = _zeros_for_none(tf, outer.gradient(dot, raw), raw)
                return value, grads, hv

            return fn

        @tf.function(reduce_retracing=True)
        def fn(x, y, tangents):
            tangents = [tf.cast(t, v.dtype) for t, v in zip(tangents, raw)]
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(raw)
                with tf.autodiff.ForwardAccumulator(raw, tangents) as acc:
                    outputs = model_ref()(x, training=False)
                flat_out = tf.nest.flatten(outputs)
            jv = [acc.jvp(o, unconnected_gradients="zero") for o in flat_out]
            # H_out (J v): double backprop through the loss only, on a copy
            # of the outputs detached from the parameters.
            z = [tf.stop_gradient(o) for o in flat_out]
            with tf.GradientTape() as outer:
                outer.watch(z)
                with tf.GradientTape() as inner:
                    inner.watch(z)
                    pred = tf.nest.pack_sequence_as(outputs, z)
                    value = _mean(tf, loss_fn(y, pred))
                gz = inner.gradient(value, z, unconnected_gradients="zero")
                dot = tf.add_n(
                    [
                        tf.reduce_sum(g * tf.stop_gradient(j))
                        for g, j in zip(gz, jv)
                    ]
                )
            h_jv = outer.gradient(dot, z, unconnected_gradients="zero")
            hv = tape.gradient(
                flat_out,
                raw,
                output_gradients=h_jv,
                unconnected_gradients="zero",
            )
            grads = tape.gradient(
                flat_out,
                raw,
                output_gradients=gz,
                unconnected_gradients="zero",
            )
            del tape
            return value, grads, hv

        return fn

    key = ("hvp", tuple(id(v) for v in variables), id(loss_fn), gauss_newton)
    fn = _cached(model, key, build)
    value, grads, hv = fn(x, y, [tf.convert_to_tensor(t) for t in vectors])
    return (
        float(value),
        [_as_numpy(g) for g in grads],
        [_as_numpy(h) for h in hv],
    )
