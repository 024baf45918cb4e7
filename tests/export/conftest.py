import numpy as np
import pytest


def _keras():
    import keras

    return keras


def build_two_io_model():
    """Functional model with two inputs and two outputs (tiny)."""
    keras = _keras()
    img = keras.Input((12, 12, 3), name="img")
    aux = keras.Input((4,), name="aux")
    x = keras.layers.Conv2D(8, 3, activation="relu")(img)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Concatenate()([x, aux])
    logits = keras.layers.Dense(5, name="logits")(x)
    reg = keras.layers.Dense(1, name="reg")(x)
    return keras.Model([img, aux], [logits, reg], name="two_io")


def build_sequential():
    keras = _keras()
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ],
        name="seq",
    )


def build_decisive_classifier(num_classes=4, size=8):
    """A classifier with hand-set weights and clear class margins.

    Class c is the input channel with the largest mean; the 1x1 conv copies
    channels (identity) and the dense layer scales by 10, so logits are
    far apart and int8 quantization keeps the arg-max.
    """
    keras = _keras()
    inp = keras.Input((size, size, num_classes), name="x")
    x = keras.layers.Conv2D(16, 1, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(num_classes, name="head")(x)
    out = keras.layers.Softmax()(x)
    model = keras.Model(inp, out, name="decisive")
    kernel = np.zeros((1, 1, num_classes, 16), np.float32)
    for c in range(num_classes):
        kernel[0, 0, c, c] = 1.0
    model.get_layer("conv").set_weights([kernel, np.zeros(16, np.float32)])
    head = np.zeros((16, num_classes), np.float32)
    for c in range(num_classes):
        head[c, c] = 10.0
    model.get_layer("head").set_weights(
        [head, np.zeros(num_classes, np.float32)]
    )
    return model


def make_decisive_data(n=64, num_classes=4, size=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, size, size, num_classes))
    labels = rng.integers(0, num_classes, size=n)
    x[np.arange(n), :, :, labels] += 1.0
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def two_io_model():
    return build_two_io_model()


@pytest.fixture(scope="module")
def sequential_model():
    return build_sequential()


@pytest.fixture(scope="module")
def decisive_model():
    return build_decisive_classifier()


@pytest.fixture(scope="module")
def decisive_data():
    return make_decisive_data()
