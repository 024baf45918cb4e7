"""Export of models with undefined (None) spatial / sequence axes (issue 11).

Prune -> fit -> strip -> export on a keras-hub-style image model built with
`image_shape=(None, None, 3)` and a text model with a None sequence length.
"""

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

import keras  # noqa: E402

import keras_neuronprune as knp  # noqa: E402
from keras_neuronprune.core.surgery import DEFAULT_IMAGE_SIDE  # noqa: E402
from keras_neuronprune.core.surgery import concrete_input_shapes  # noqa: E402
from keras_neuronprune.core.surgery import with_static_inputs  # noqa: E402
from keras_neuronprune.export import onnx  # noqa: E402
from keras_neuronprune.export import tflite  # noqa: E402

RNG = np.random.default_rng(0)


def _image_model(image_shape=(None, None, 3)):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(image_shape, name="images")
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="image_backbone")


def _text_model():
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(20, 8, name="embed")(tokens)
    x = keras.layers.Dense(16, activation="relu", name="ffn1")(x)
    x = keras.layers.Dense(8, name="ffn2")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(tokens, outputs, name="text_backbone")


def _prune_fit_strip(model, x, y, input_shape):
    pruned = knp.prune_structured(
        model, pruning_ratio=0.5, criterion="l1", input_shape=input_shape
    )
    pruned.compile("adam", "mse")
    pruned.fit(
        x, y, epochs=1, batch_size=4, verbose=0,
        callbacks=[knp.callbacks.UpdatePruning()],
    )  # fmt: skip
    return pruned, knp.strip_pruning(pruned)


def test_image_model_with_none_sides_prune_fit_strip_tflite(tmp_path):
    model = _image_model()
    x = RNG.standard_normal((8, 16, 16, 3)).astype("float32")
    y = RNG.standard_normal((8, 3)).astype("float32")
    pruned, stripped = _prune_fit_strip(model, x, y, (16, 16, 3))
    assert stripped.get_layer("c1").filters == 4
    assert stripped.inputs[0].shape[1:] == (None, None, 3)
    result = tflite(stripped, tmp_path / "img.tflite", input_shape=(16, 16, 3))
    assert result.parity.passed
    assert result.input_details[0]["shape"] == [1, 16, 16, 3]
    # The exported graph computes the pruned (masked) model at that shape.
    np.testing.assert_allclose(
        stripped(x[:2]), pruned(x[:2]), rtol=1e-4, atol=1e-4
    )
    # Without input_shape the image sides default to 224.
    default = tflite(stripped, tmp_path / "img224.tflite")
    assert default.parity.passed
    side = DEFAULT_IMAGE_SIDE
    assert default.input_details[0]["shape"] == [1, side, side, 3]


def test_pruned_model_with_none_sides_exports_directly(tmp_path):
    model = _image_model()
    x = RNG.standard_normal((8, 12, 12, 3)).astype("float32")
    y = RNG.standard_normal((8, 3)).astype("float32")
    pruned, _ = _prune_fit_strip(model, x, y, (12, 12, 3))
    result = tflite(pruned, tmp_path / "p.tflite", input_shape=(12, 12, 3))
    assert result.stripped and result.parity.passed


def test_text_model_with_none_sequence_prune_fit_strip_export(tmp_path):
    model = _text_model()
    x = RNG.integers(0, 20, (8, 10)).astype("int32")
    y = RNG.standard_normal((8, 2)).astype("float32")
    _, stripped = _prune_fit_strip(model, x, y, (10,))
    assert stripped.get_layer("ffn1").units == 8
    result = tflite(stripped, tmp_path / "text.tflite")
    assert result.parity.passed
    assert result.input_details[0]["shape"] == [1, 128]
    given = tflite(
        stripped, tmp_path / "t.tflite", input_shape={"token_ids": (10,)}
    )
    assert given.input_details[0]["shape"] == [1, 10]
    # Parity data at the given shape is used as it is.
    data = tflite(
        stripped, tmp_path / "d.tflite", input_shape=(10,), parity_data=x
    )
    assert data.parity.data == "parity_data" and data.parity.passed
    pytest.importorskip("onnxruntime")
    assert onnx(stripped, tmp_path / "t.onnx", input_shape=(10,)).parity.passed


def _undefined_features_model():
    signal = keras.Input((None, None), name="signal")
    x = keras.ops.mean(signal, axis=-1, keepdims=True)
    return keras.Model(signal, keras.layers.Dense(2)(x))


def test_undefined_features_need_input_shape(tmp_path):
    model = _undefined_features_model()
    with pytest.raises(ValueError, match=r"Pass `input_shape=`.*export\.onnx"):
        onnx(model, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="`input_shape` must fill"):
        tflite(model, tmp_path / "x.tflite", input_shape=(8, 0))
    result = tflite(model, tmp_path / "x.tflite", input_shape=(6, 5))
    assert result.input_details[0]["shape"] == [1, 6, 5]
    with pytest.raises(ValueError, match="`input_shape` must fill"):
        concrete_input_shapes(_image_model((16, 16, 3)), (8, 8, 3))
    with pytest.raises(ValueError, match="names inputs the model does not"):
        concrete_input_shapes(_text_model(), {"ids": (4,)})


def test_static_model_is_kept_and_user_model_unchanged():
    static = _image_model((8, 8, 3))
    assert with_static_inputs(static) is static
    model = _image_model()
    fixed = with_static_inputs(model, (8, 8, 3))
    assert fixed.inputs[0].shape == (None, 8, 8, 3)
    assert fixed.inputs[0].name == "images"
    assert model.inputs[0].shape == (None, None, None, 3)
    x = RNG.standard_normal((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(fixed(x), model(x), atol=1e-6)
