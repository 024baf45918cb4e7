"""Fixtures of the weight-sparsity tests: digits data and tiny models."""

import keras
import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def make_mlp(seed=0, hidden=64):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(hidden, activation="relu", name="fc1")(inputs)
    h = keras.layers.Dense(hidden, activation="relu", name="fc2")(h)
    outputs = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(inputs, outputs, name="mlp")


def make_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 4), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(
        inputs
    )
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.Conv2D(8, 1, name="pw")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = keras.layers.Dense(4, name="head")(h)
    return keras.Model(inputs, outputs, name="cnn")


def loss_fn():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="session")
def mlp_factory():
    return make_mlp


@pytest.fixture(scope="session")
def cnn_factory():
    return make_cnn


@pytest.fixture
def cnn_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 4)).astype("float32")
    y = rng.integers(0, 4, size=(32,))
    return x, y
