"""ChannelGate: output, gradient identity, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_neuronprune import layers as knp_layers


def test_output_is_input_times_gate_times_mask():
    gate = knp_layers.ChannelGate(axis=1)
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    gate(x)
    gate.gate.assign([2.0, 1.0, 0.5])
    gate.set_output_mask([1, 0, 1])
    expected = x * np.array([2.0, 0.0, 0.5])[None, :, None]
    np.testing.assert_allclose(np.asarray(gate(x)), expected, rtol=1e-6)
    assert gate.gate.trainable and not gate.channel_mask.trainable


def test_gate_gradient_equals_activation_times_gradient():
    x = tf.constant(
        np.random.default_rng(1).normal(size=(3, 5, 4)).astype("float32")
    )
    gate = knp_layers.ChannelGate(gate_trainable=False)
    gate(x)
    w = tf.constant(
        np.random.default_rng(2).normal(size=(3, 5, 4)).astype("float32")
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(gate.gate.value)
        y = gate(x)
        tape.watch(y)
        loss = tf.reduce_sum(tf.tanh(y) * w)
    g_gate = tape.gradient(loss, gate.gate.value).numpy()
    g_y = tape.gradient(loss, y).numpy()
    np.testing.assert_allclose(g_gate, (y.numpy() * g_y).sum((0, 1)), rtol=1e-5)


def test_config_round_trip():
    gate = knp_layers.ChannelGate(axis=1, gate_trainable=False, name="bn_gate")
    config = gate.get_config()
    clone = knp_layers.ChannelGate.from_config(config)
    assert clone.get_config() == config
    clone.build((None, 3, 2))
    assert clone.trainable_weights == []


def test_unknown_channel_dimension():
    with pytest.raises(ValueError, match="channel dimension"):
        knp_layers.ChannelGate().build((None, None))


def test_gate_suffix():
    assert knp_layers.GATE_SUFFIX == "_gate"
    assert keras.saving.get_registered_name(knp_layers.ChannelGate) == (
        "keras_neuronprune>ChannelGate"
    )
