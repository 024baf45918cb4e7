import keras
import numpy as np
import pytest
import tensorflow as tf
from advanced_models import BUILDERS
from advanced_models import groups_of
from advanced_models import make_data
from advanced_models import prunable
from advanced_models import randomize_bn

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.sosp import SOSP

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
L = keras.layers


def _mlp():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), dtype="float64")
    x = L.Dense(5, name="d1", dtype="float64")(inp)
    x = L.BatchNormalization(name="bn", dtype="float64")(x)
    x = L.ReLU(name="r1", dtype="float64")(x)
    x = L.Dense(4, activation="tanh", name="d2", dtype="float64")(x)
    out = L.Dense(3, name="head", dtype="float64")(x)
    model = keras.Model(inp, out)
    return randomize_bn(model)


def _explicit(model, x, y):
    variables = model.trainable_variables
    sizes = [int(np.prod(v.shape)) for v in variables]
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            logits = model(x, training=False)
            loss = tf.reduce_mean(LOSS(y, logits))
        grads = inner.gradient(loss, variables)
        flat_g = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
    hessian = np.concatenate(
        [
            np.reshape(j, (flat_g.shape[0], n))
            for j, n in zip(outer.jacobian(flat_g, variables), sizes)
        ],
        axis=1,
    )
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
    jac = np.concatenate(
        [
            np.reshape(j, (logits.shape[0] * logits.shape[1], n))
            for j, n in zip(tape.jacobian(logits, variables), sizes)
        ],
        axis=1,
    )
    p = tf.nn.softmax(logits).numpy()
    blocks = [(np.diag(q) - np.outer(q, q)) / len(p) for q in p]
    h_out = np.zeros((jac.shape[0], jac.shape[0]))
    k = p.shape[1]
    for i, b in enumerate(blocks):
        h_out[i * k : (i + 1) * k, i * k : (i + 1) * k] = b
    gauss_newton = jac.T @ h_out @ jac
    theta = np.concatenate([np.ravel(v.numpy()) for v in variables])
    return flat_g.numpy(), hessian, gauss_newton, theta, variables


def _index_sets(model, variables):
    offsets, start = {}, 0
    for v in variables:
        offsets[v.path] = (start, v.shape)
        start += int(np.prod(v.shape))

    def entries(path, selector):
        begin, shape = offsets[path]
        idx = np.arange(int(np.prod(shape))).reshape(shape)
        return list(np.ravel(idx[selector]) + begin)

    sets = {}
    for c in range(5):
        sets[("d1", c)] = (
            entries("d1/kernel", (slice(None), c))
            + entries("d1/bias", c)
            + entries("bn/gamma", c)
            + entries("bn/beta", c)
        )
    for c in range(4):
        sets[("d2", c)] = entries("d2/kernel", (slice(None), c)) + entries(
            "d2/bias", c
        )
    return sets


@pytest.mark.parametrize("gauss_newton", [True, False])
def test_sosp_matches_explicit_hessian(gauss_newton):
    model = _mlp()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4))
    y = rng.integers(0, 3, size=24)
    groups = groups_of(model)
    assert sorted(g.name for g in prunable(groups)) == ["d1", "d2"]
    criterion = SOSP(gauss_newton=gauss_newton, min_samples=8)
    scores = criterion.score(
        ScoringContext(
            model, groups, [(x[:12], y[:12]), (x[12:], y[12:])], LOSS
        )
    )
    g, hessian, gn, theta, variables = _explicit(model, x, y)
    curvature = gn if gauss_newton else hessian
    sets = _index_sets(model, variables)
    union = sorted(i for s in sets.values() for i in s)
    theta_all = np.zeros_like(theta)
    theta_all[union] = theta[union]
    h_theta = curvature @ theta_all
    for (name, c), idx in sets.items():
        expected = abs(theta[idx] @ g[idx]) + 0.5 * abs(
            theta[idx] @ h_theta[idx]
        )
        # The Keras loss computes in float32.
        np.testing.assert_allclose(scores[name][c], expected, rtol=1e-5)
    assert not np.allclose(hessian @ theta_all, gn @ theta_all, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_sosp_on_conv_models(name):
    model = randomize_bn(BUILDERS[name]())
    groups = groups_of(model)
    scores = SOSP(min_samples=16).score(
        ScoringContext(model, groups, make_data(n=32), LOSS)
    )
    assert set(scores) == {g.name for g in prunable(groups)}
    for group in prunable(groups):
        assert scores[group.name].shape == (group.size,)
        assert np.all(scores[group.name] >= 0)
        assert np.any(scores[group.name] > 0)
    maxed = SOSP(reduction="max", min_samples=16).score(
        ScoringContext(model, groups, make_data(n=32), LOSS)
    )
    for group in prunable(groups):
        assert maxed[group.name].shape == (group.size,)


def test_sosp_errors():
    model = BUILDERS["chain"]()
    groups = groups_of(model)
    with pytest.raises(ValueError, match="`data` is required"):
        SOSP().score(ScoringContext(model, groups, None, LOSS))
    with pytest.raises(ValueError, match="loss"):
        SOSP().score(ScoringContext(model, groups, make_data(n=64)))
    with pytest.raises(ValueError, match="at least 64 calibration samples"):
        SOSP().score(ScoringContext(model, groups, make_data(n=16), LOSS))
    x_only = [np.zeros((64, 8, 8, 3), "float32")]
    with pytest.raises(ValueError, match="needs targets"):
        SOSP().score(ScoringContext(model, groups, x_only, LOSS))
    kernel = model.get_layer("c2").kernel
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    with pytest.raises(ValueError, match="non-finite"):
        SOSP(min_samples=16).score(
            ScoringContext(model, groups, make_data(n=32), LOSS)
        )
