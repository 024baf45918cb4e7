"""Tiny chain, residual and concatenation models for criteria tests."""

import keras
import numpy as np

L = keras.layers


def make_chain(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="r1")(x)
    x = L.Conv2D(5, 3, padding="same", name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="r2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, name="head")(x)
    return keras.Model(inp, out, name="chain")


def make_resnet(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for b in range(2):
        h = L.Conv2D(6, 3, padding="same", name=f"b{b}_c1")(x)
        h = L.BatchNormalization(name=f"b{b}_bn1")(h)
        h = L.ReLU(name=f"b{b}_r1")(h)
        h = L.Conv2D(8, 3, padding="same", name=f"b{b}_c2")(h)
        h = L.BatchNormalization(name=f"b{b}_bn2")(h)
        x = L.Add(name=f"b{b}_add")([x, h])
        x = L.ReLU(name=f"b{b}_out")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, name="head")(x)
    return keras.Model(inp, out, name="resnet")


def make_densenet(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="stem")(inp)
    for i in range(2):
        h = L.BatchNormalization(name=f"d{i}_bn")(x)
        h = L.ReLU(name=f"d{i}_r")(h)
        h = L.Conv2D(3, 3, padding="same", name=f"d{i}_c")(h)
        x = L.Concatenate(name=f"d{i}_cat")([x, h])
    x = L.BatchNormalization(name="f_bn")(x)
    x = L.ReLU(name="f_r")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, name="head")(x)
    return keras.Model(inp, out, name="densenet")


def randomize_bn(model, seed=0):
    """Gives BatchNormalization layers non-trivial statistics."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0, 0.1, c))
            layer.moving_mean.assign(rng.normal(0, 0.1, c))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c))
    return model


def make_data(n=32, batch=16, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = rng.integers(0, classes, size=(n,))
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


BUILDERS = {
    "chain": make_chain,
    "resnet": make_resnet,
    "densenet": make_densenet,
}


def groups_of(model):
    from keras_neuronprune.graph import channel_groups

    return channel_groups(model)


def prunable(groups):
    return [g for g in groups if g.prunable]
