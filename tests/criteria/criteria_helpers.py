"""Tiny models and hand-made channel groups for the criteria tests."""

import keras
import numpy as np

from keras_neuronprune.graph.channel_group import ChannelGroup
from keras_neuronprune.graph.channel_group import GroupMember


def member(layer, role, kind, channels, input_index=0):
    channels = np.asarray(channels, "int64")
    if channels.ndim == 1:
        channels = channels[:, None]
    return GroupMember(layer, role, kind, input_index, channels)


def group(name, size, members, prunable=True):
    return ChannelGroup(name, size, prunable, True, None, list(members))


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for w in layer.weights:
            name = w.name.split("/")[-1]
            if "mask" in name or name == "gate":
                continue
            if name == "moving_variance":
                w.assign(rng.uniform(0.5, 2.0, size=w.shape))
            else:
                w.assign(rng.normal(size=w.shape))


def residual_model():
    """c1 -> bn1 -> relu -> c2 -> bn2, added to relu -> flatten -> dense."""
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="r1")(x)
    y = keras.layers.Conv2D(4, 1, name="c2")(x)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    z = keras.layers.Add(name="add")([x, y])
    z = keras.layers.Flatten(name="f")(z)
    outputs = keras.layers.Dense(3, name="d")(z)
    model = keras.Model(inputs, outputs)
    randomize(model)
    return model


def residual_model_with_gates(source):
    """`residual_model` with a ChannelGate after each BN, weights copied."""
    from keras_neuronprune.layers import ChannelGate

    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = ChannelGate(gate_trainable=False, name="bn1_gate")(x)
    x = keras.layers.ReLU(name="r1")(x)
    y = keras.layers.Conv2D(4, 1, name="c2")(x)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    y = ChannelGate(gate_trainable=False, name="bn2_gate")(y)
    z = keras.layers.Add(name="add")([x, y])
    z = keras.layers.Flatten(name="f")(z)
    outputs = keras.layers.Dense(3, name="d")(z)
    model = keras.Model(inputs, outputs)
    for layer in source.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model
