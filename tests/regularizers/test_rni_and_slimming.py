"""RNI receding penalty and Network Slimming L1."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_neuronprune import regularizers as knp_regularizers


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_rni_value_matches_numpy():
    gamma = np.array([-5.0, -1.0, 0.0, 2.5], "float32")
    reg = knp_regularizers.RNIRegularizer(strength=0.3, shift=3.0)
    s = _sigmoid(gamma.astype("float64") + 3.0)
    expected = 0.3 * np.sum(s * (1 - np.log(s)))
    np.testing.assert_allclose(float(reg(gamma)), expected, rtol=1e-5)


def _rni_grad(gamma, shift):
    reg = knp_regularizers.RNIRegularizer(strength=1.0, shift=shift)
    g = tf.Variable(gamma.astype("float32"))
    with tf.GradientTape() as tape:
        value = reg(g)
    return tape.gradient(value, g).numpy()


def test_rni_gradient_peaks_near_0236_and_recedes_only_weak_neurons():
    shift = 3.0
    s = np.linspace(0.002, 0.998, 4000)
    gamma = np.log(s) - np.log1p(-s) - shift  # so sigmoid(gamma + b) = s
    grad = _rni_grad(gamma, shift)
    np.testing.assert_allclose(grad, -np.log(s) * s * (1 - s), rtol=2e-3)
    assert np.all(grad >= 0)  # gradient descent only lowers gamma
    peak = s[np.argmax(grad)]
    assert abs(peak - 0.236) < 0.005
    # Vanishes for important neurons (s -> 1) and for s -> 0.
    assert grad[-1] < 0.01 * grad.max() and grad[0] < 0.1 * grad.max()
    # Published numbers (shift 3): importance 0.5 gets ~0.002, importance
    # ~0.015 gets the maximum push ~0.26.
    at_half = _rni_grad(np.array([0.0]), shift)[0]
    assert abs(at_half - 0.0022) < 3e-4
    assert abs(grad.max() - 0.26) < 0.01
    importance_at_peak = _sigmoid(gamma[np.argmax(grad)])
    assert abs(importance_at_peak - 0.015) < 0.002


def test_rni_is_stable_for_extreme_gamma():
    reg = knp_regularizers.RNIRegularizer()
    value = float(reg(np.array([-200.0, 200.0], "float32")))
    assert np.isfinite(value)
    np.testing.assert_allclose(value, 1e-4 * 1.0, rtol=1e-5)


def test_slimming_is_l1():
    reg = knp_regularizers.SlimmingRegularizer(strength=0.5)
    np.testing.assert_allclose(float(reg(np.array([1.0, -2.0, 0.5]))), 1.75)


@pytest.mark.parametrize(
    "reg",
    [
        knp_regularizers.RNIRegularizer(strength=1e-3, shift=0.0),
        knp_regularizers.SlimmingRegularizer(strength=1e-5),
    ],
)
def test_serialisation_round_trip(reg):
    blob = keras.regularizers.serialize(reg)
    assert blob["registered_name"].startswith("keras_neuronprune>")
    again = keras.regularizers.deserialize(blob)
    assert type(again) is type(reg) and again.get_config() == reg.get_config()


def test_bad_arguments():
    with pytest.raises(ValueError, match="strength"):
        knp_regularizers.RNIRegularizer(strength=-1)
    with pytest.raises(ValueError, match="shift"):
        knp_regularizers.RNIRegularizer(shift=float("nan"))
    with pytest.raises(ValueError, match="strength"):
        knp_regularizers.SlimmingRegularizer(strength="a")


def test_attach_regularizer_trains_and_serialises():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3, name="d")
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(dense(inputs)))
    assert model.losses == []
    knp_regularizers.attach_regularizer(
        bn, "gamma", knp_regularizers.SlimmingRegularizer(0.1)
    )
    knp_regularizers.attach_regularizer(
        dense, "kernel", knp_regularizers.GrowingRegularizer([1.0, 0, 0])
    )
    assert len(model.losses) == 2
    np.testing.assert_allclose(float(model.losses[0] + model.losses[1]) > 0, 1)
    config = model.get_layer("bn").get_config()
    assert config["gamma_regularizer"]["class_name"] == "SlimmingRegularizer"
    with pytest.raises(ValueError, match="no weight named"):
        knp_regularizers.attach_regularizer(bn, "kernel", None)
    knp_regularizers.attach_regularizer(bn, "gamma", None)
    assert len(model.losses) == 1
