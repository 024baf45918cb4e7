import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")
pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_neuronprune.export import onnx  # noqa: E402


def _ort(path, feeds):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def test_functional_two_io(two_io_model, tmp_path):
    result = onnx(two_io_model, tmp_path / "m.onnx", opset=17)
    assert result.format == "onnx"
    assert result.opset == 17
    assert result.parity.passed and result.parity.value < 1e-5
    assert [d["name"] for d in result.input_details] == ["img", "aux"]

    rng = np.random.default_rng(1)
    img = rng.standard_normal((3, 12, 12, 3)).astype(np.float32)
    aux = rng.standard_normal((3, 4)).astype(np.float32)
    logits, reg = _ort(result.path, {"img": img, "aux": aux})
    ref_logits, ref_reg = two_io_model([img, aux], training=False)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(reg, ref_reg, atol=1e-5)


def test_sequential_model_exports(sequential_model, tmp_path):
    # tf2onnx.convert.from_keras fails on Keras 3 Sequential models; the
    # Keras exporter path must not.
    result = onnx(sequential_model, tmp_path / "s.onnx", opset=15)
    assert result.opset == 15
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 3))
    name = result.input_details[0]["name"]
    (out,) = _ort(result.path, {name: x.astype(np.float32)})
    np.testing.assert_allclose(
        out, sequential_model(x, training=False), atol=1e-5
    )


def test_bad_arguments(sequential_model, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="opset"):
        onnx(sequential_model, tmp_path / "s.onnx", opset=30)
    with pytest.raises(ValueError, match=r"\.onnx"):
        onnx(sequential_model, tmp_path / "s.tflite")

    def boom(*args, **kwargs):
        raise AssertionError("conversion must not start")

    monkeypatch.setattr(keras.Model, "export", boom)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="directory of `path`"):
        onnx(sequential_model, blocker / "s.onnx")
