"""A model built from every pruning layer saves and loads as `.keras`."""

import keras
import numpy as np

from keras_neuronprune import layers as knp_layers
from keras_neuronprune import regularizers as knp_regularizers


def _model():
    inputs = keras.Input((8, 8, 3))
    x = knp_layers.MaskedConv2D(6, 3, padding="same", name="c1")(inputs)
    x = knp_layers.BoundedBatchNormalization(
        center=True,
        gamma_regularizer=knp_regularizers.RNIRegularizer(),
        name="bn1",
    )(x)
    x = knp_layers.ChannelGate(name="bn1_gate")(x)
    x = keras.layers.ReLU()(x)
    x = knp_layers.MaskedDepthwiseConv2D(3, padding="same", name="dw")(x)
    x = knp_layers.MaskedBatchNormalization(name="bn2")(x)
    x = knp_layers.MaskedSeparableConv2D(4, 3, name="sep")(x)
    c1d = keras.layers.Reshape((-1, 4))(x)
    c1d = knp_layers.MaskedConv1D(4, 2, name="c1d")(c1d)
    y = keras.layers.Flatten()(c1d)
    y = knp_layers.MaskedDense(
        5,
        kernel_regularizer=knp_regularizers.GrowingRegularizer(5),
        name="fc",
    )(y)
    z = keras.layers.Reshape((1, 1, 1, 5))(y)
    z = knp_layers.MaskedConv3D(2, 1, name="c3d")(z)
    return keras.Model(inputs, keras.layers.Flatten()(z))


def test_save_and_load_keeps_masks_and_outputs(tmp_path):
    model = _model()
    rng = np.random.default_rng(0)
    model.get_layer("c1").set_output_mask([1, 0, 1, 1, 1, 1])
    model.get_layer("bn1").set_output_mask([1, 1, 0, 1, 1, 1])
    model.get_layer("bn1_gate").set_output_mask([1, 1, 1, 0, 1, 1])
    model.get_layer("dw").set_output_mask([1, 1, 1, 1, 0, 1])
    model.get_layer("sep").set_input_mask([1, 1, 1, 1, 1, 0])
    model.get_layer("fc").set_output_mask([1, 0, 1, 1, 1])
    model.get_layer("fc").kernel_regularizer.set_penalty([0, 1, 0, 0, 2])
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    model(x, training=True)
    expected = np.asarray(model(x))
    path = tmp_path / "masked.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, atol=1e-5)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert type(loaded.get_layer("bn1")) is knp_layers.BoundedBatchNormalization
    reg = loaded.get_layer("fc").kernel_regularizer
    np.testing.assert_array_equal(reg.penalty.numpy(), [0, 1, 0, 0, 2])
    assert len(loaded.losses) == len(model.losses) == 2
    np.testing.assert_allclose(
        [float(v) for v in loaded.losses],
        [float(v) for v in model.losses],
        rtol=1e-5,
    )
