import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_neuronprune.utils import activations_and_gradients
from keras_neuronprune.utils import hessian_vector_product
from keras_neuronprune.utils import loss_and_gradients
from keras_neuronprune.utils import resolve_loss


def _tiny_model(dtype="float64", seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,), dtype=dtype)
    h = keras.layers.Dense(4, activation="tanh", dtype=dtype, name="hidden")(
        inputs
    )
    out = keras.layers.Dense(2, dtype=dtype, name="out")(h)
    return keras.Model(inputs, out)


def _data(n=5, dtype="float64", seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(dtype)
    y = rng.normal(size=(n, 2)).astype(dtype)
    return x, y


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def _unflat(flat, shapes):
    out, start = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(flat[start : start + n].reshape(s))
        start += n
    return out


def _explicit_mlp(theta, x, shapes):
    w1, b1, w2, b2 = _unflat_tf(theta, shapes)
    return tf.matmul(tf.tanh(tf.matmul(x, w1) + b1), w2) + b2


def _unflat_tf(theta, shapes):
    out, start = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(tf.reshape(theta[start : start + n], s))
        start += n
    return out


def _explicit_hessian(model, x, y):
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    theta = tf.constant(_flat([v.numpy() for v in model.trainable_variables]))
    with tf.GradientTape() as outer:
        outer.watch(theta)
        with tf.GradientTape() as inner:
            inner.watch(theta)
            value = tf.reduce_mean(
                tf.square(y - _explicit_mlp(theta, x, shapes))
            )
        grad = inner.gradient(value, theta)
    hessian = outer.jacobian(grad, theta).numpy()
    with tf.GradientTape() as tape:
        tape.watch(theta)
        z = _explicit_mlp(theta, x, shapes)
    jac = tape.jacobian(z, theta).numpy().reshape(-1, theta.shape[0])
    gauss_newton = jac.T @ jac * (2.0 / z.numpy().size)
    return hessian, gauss_newton, float(value), grad.numpy()


def test_loss_and_gradients_match_explicit_and_finite_differences():
    model = _tiny_model()
    x, y = _data()
    value, grads = loss_and_gradients(
        model, model.trainable_variables, x, y, "mse"
    )
    _, _, ref_value, ref_grad = _explicit_hessian(model, x, y)
    np.testing.assert_allclose(value, ref_value, rtol=1e-10)
    np.testing.assert_allclose(_flat(grads), ref_grad, rtol=1e-8, atol=1e-12)

    # Central finite differences on one kernel entry.
    kernel = model.get_layer("hidden").kernel
    original = kernel.numpy()
    eps = 1e-6
    for index in [(0, 0), (2, 3)]:
        bumped = original.copy()
        bumped[index] += eps
        kernel.assign(bumped)
        plus, _ = loss_and_gradients(model, [kernel], x, y, "mse")
        bumped[index] -= 2 * eps
        kernel.assign(bumped)
        minus, _ = loss_and_gradients(model, [kernel], x, y, "mse")
        kernel.assign(original)
        fd = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grads[0][index], fd, rtol=1e-6)


def test_hvp_matches_explicit_hessian_and_finite_differences():
    model = _tiny_model()
    x, y = _data()
    variables = model.trainable_variables
    rng = np.random.default_rng(3)
    vectors = [rng.normal(size=v.shape) for v in variables]
    hessian, gauss_newton, _, _ = _explicit_hessian(model, x, y)

    hv = hessian_vector_product(model, variables, vectors, x, y, "mse")
    np.testing.assert_allclose(_flat(hv), hessian @ _flat(vectors), rtol=1e-8)

    gnv = hessian_vector_product(
        model, variables, vectors, x, y, "mse", gauss_newton=True
    )
    np.testing.assert_allclose(
        _flat(gnv), gauss_newton @ _flat(vectors), rtol=1e-8, atol=1e-12
    )
    # The tanh layer makes the two matrices differ: the test above would
    # not catch an implementation that ignores `gauss_newton`.
    assert not np.allclose(_flat(hv), _flat(gnv), rtol=1e-3)

    # Finite differences of the gradient along the vector.
    eps = 1e-5
    originals = [v.numpy() for v in variables]
    for v, o, t in zip(variables, originals, vectors):
        v.assign(o + eps * t)
    _, g_plus = loss_and_gradients(model, variables, x, y, "mse")
    for v, o, t in zip(variables, originals, vectors):
        v.assign(o - eps * t)
    _, g_minus = loss_and_gradients(model, variables, x, y, "mse")
    for v, o in zip(variables, originals):
        v.assign(o)
    fd = (_flat(g_plus) - _flat(g_minus)) / (2 * eps)
    np.testing.assert_allclose(_flat(hv), fd, rtol=1e-5, atol=1e-8)


def test_gauss_newton_equals_hessian_for_linear_model_and_is_psd():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), dtype="float64")
    out = keras.layers.Dense(2, dtype="float64")(inputs)
    model = keras.Model(inputs, out)
    x, y = _data()
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=v.shape) for v in model.trainable_variables]
    hv = hessian_vector_product(model, None, vectors, x, y, "mse")
    gnv = hessian_vector_product(
        model, None, vectors, x, y, "mse", gauss_newton=True
    )
    np.testing.assert_allclose(_flat(hv), _flat(gnv), rtol=1e-10)
    assert _flat(gnv) @ _flat(vectors) > 0


def test_gauss_newton_with_cross_entropy_on_logits_is_psd():
    model = _tiny_model(dtype="float32")
    x, _ = _data(n=8, dtype="float32")
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        vectors = [
            rng.normal(size=v.shape).astype("float32")
            for v in model.trainable_variables
        ]
        gnv = hessian_vector_product(
            model, None, vectors, x, y, loss, gauss_newton=True
        )
        assert _flat(gnv) @ _flat(vectors) >= -1e-6


def test_activation_gradients_match_numpy():
    model = _tiny_model()
    x, y = _data()
    acts, grads = activations_and_gradients(model, ["hidden"], x, y, "mse")
    w1, b1 = [v.numpy() for v in model.get_layer("hidden").weights]
    w2, b2 = [v.numpy() for v in model.get_layer("out").weights]
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    np.testing.assert_allclose(acts["hidden"], h, rtol=1e-10)
    dz = 2.0 * (z - y) / z.size
    np.testing.assert_allclose(grads["hidden"], dz @ w2.T, rtol=1e-8)

    # Gradient w.r.t. a model output layer is the loss gradient itself.
    _, grads = activations_and_gradients(model, "out", x, y, "mse")
    np.testing.assert_allclose(grads["out"], dz, rtol=1e-8)


def test_training_mode_restores_batch_norm_statistics():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, name="d")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(1)(h)
    model = keras.Model(inputs, out)
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32") + 3.0
    y = np.zeros((6, 1), "float32")
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    loss_and_gradients(model, None, x, y, "mse", training=True)
    activations_and_gradients(model, ["d"], x, y, "mse", training=True)
    after = [v.numpy() for v in model.non_trainable_variables]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)


def test_unconnected_variable_gets_zero_gradient():
    model = _tiny_model()
    other = keras.Variable(np.ones((2,)), name="unused")
    x, y = _data()
    _, grads = loss_and_gradients(model, [other], x, y, "mse")
    np.testing.assert_array_equal(grads[0], np.zeros(2))


def test_loss_forms():
    y = np.array([0, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    expected = -np.mean(np.log([0.9, 0.8]))
    for loss in [
        "sparse_categorical_crossentropy",
        keras.losses.SparseCategoricalCrossentropy,
        keras.losses.SparseCategoricalCrossentropy(),
        keras.losses.sparse_categorical_crossentropy,
    ]:
        value = np.mean(np.asarray(resolve_loss(loss)(y, p)))
        np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_bad_inputs():
    model = _tiny_model()
    x, y = _data()
    with pytest.raises(ValueError, match="loss"):
        loss_and_gradients(model, None, x, y, None)
    with pytest.raises(ValueError, match="not a known Keras loss"):
        loss_and_gradients(model, None, x, y, "no_such_loss")
    with pytest.raises(TypeError, match="loss"):
        resolve_loss(3)
    with pytest.raises(ValueError, match="variables"):
        loss_and_gradients(model, [], x, y, "mse")
    with pytest.raises(ValueError, match="vectors"):
        hessian_vector_product(model, None, [np.ones(3)], x, y, "mse")
    with pytest.raises(ValueError, match="shape"):
        hessian_vector_product(
            model,
            None,
            [np.ones((1,))] * len(model.trainable_variables),
            x,
            y,
            "mse",
        )
    with pytest.raises(ValueError, match="not in the model"):
        activations_and_gradients(model, ["nope"], x, y, "mse")
    with pytest.raises(ValueError, match="nested"):
        activations_and_gradients(model, ["a/b"], x, y, "mse")


def test_backends_without_autodiff_raise(monkeypatch):
    # JAX and torch have adapters (tests/backends runs them); the NumPy
    # backend has no automatic differentiation.
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    model = _tiny_model()
    x, y = _data()
    for call in [
        lambda: loss_and_gradients(model, None, x, y, "mse"),
        lambda: activations_and_gradients(model, ["hidden"], x, y, "mse"),
        lambda: hessian_vector_product(model, None, [], x, y, "mse"),
    ]:
        with pytest.raises(NotImplementedError, match="'numpy'.*KERAS_BACKEND"):
            call()


@pytest.mark.parametrize("gauss_newton", [False, True])
def test_combined_gradient_and_hvp_match_separate_calls(gauss_newton):
    from keras_neuronprune.utils import gradient_and_hessian_vector_product

    model = _tiny_model()
    x, y = _data()
    rng = np.random.default_rng(5)
    vectors = [rng.normal(size=v.shape) for v in model.trainable_variables]
    value, grads, hv = gradient_and_hessian_vector_product(
        model, None, vectors, x, y, "mse", gauss_newton=gauss_newton
    )
    ref_value, ref_grads = loss_and_gradients(model, None, x, y, "mse")
    ref_hv = hessian_vector_product(
        model, None, vectors, x, y, "mse", gauss_newton=gauss_newton
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(_flat(grads), _flat(ref_grads), rtol=1e-10)
    np.testing.assert_allclose(_flat(hv), _flat(ref_hv), rtol=1e-10)


def test_cached_functions_do_not_keep_models_alive():
    import gc
    import weakref

    model = _tiny_model()
    x, y = _data()
    loss_and_gradients(model, None, x, y, "mse")
    activations_and_gradients(model, ["hidden"], x, y, "mse")
    vectors = [np.ones(v.shape) for v in model.trainable_variables]
    hessian_vector_product(model, None, vectors, x, y, "mse")
    hessian_vector_product(model, None, vectors, x, y, "mse", True)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
