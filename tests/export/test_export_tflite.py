import os

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_neuronprune.export import ExportParityError  # noqa: E402
from keras_neuronprune.export import tflite  # noqa: E402
from keras_neuronprune.export._flatbuffer import read_tflite  # noqa: E402


def _litert_outputs(path, feeds):
    """Runs a .tflite file with the LiteRT interpreter, independently."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    runner = interp.get_signature_runner("serving_default")
    return runner(**feeds)


def test_float32_two_inputs_two_outputs_matches_keras(two_io_model, tmp_path):
    path = tmp_path / "two_io.tflite"
    result = tflite(two_io_model, path)

    assert os.path.exists(result.path)
    assert result.size_bytes == os.path.getsize(path)
    assert result.quantization is None
    assert result.parity.passed
    assert result.parity.metric == "max_abs_diff"
    assert result.parity.value < 1e-5
    assert result.gpu.compatible, str(result.gpu)
    assert [d["name"] for d in result.input_details] == ["img", "aux"]

    rng = np.random.default_rng(3)
    img = rng.standard_normal((1, 12, 12, 3)).astype(np.float32)
    aux = rng.standard_normal((1, 4)).astype(np.float32)
    out = _litert_outputs(str(path), {"img": img, "aux": aux})
    logits, reg = two_io_model([img, aux], training=False)
    np.testing.assert_allclose(out["output_0"], logits, atol=1e-5)
    np.testing.assert_allclose(out["output_1"], reg, atol=1e-5)


def test_sequential_static_and_dynamic_batch(sequential_model, tmp_path):
    static = tflite(sequential_model, tmp_path / "s.tflite")
    assert static.input_details[0]["shape"] == [1, 8, 8, 3]
    assert static.gpu.compatible

    dynamic = tflite(sequential_model, tmp_path / "d.tflite", batch_size=None)
    assert dynamic.input_details[0]["shape"] == [-1, 8, 8, 3]
    assert dynamic.parity.passed
    # A dynamic batch makes Flatten compute its shape at run time (SHAPE,
    # PACK, RESHAPE with a runtime shape), which the GPU delegate rejects.
    bad = {i.op_name for i in dynamic.gpu.issues}
    assert "SHAPE" in bad
    assert any("dynamic" in w for w in dynamic.gpu.warnings)


def test_float16_halves_weights_and_stays_close(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    f32 = tflite(model, tmp_path / "f32.tflite")
    f16 = tflite(model, tmp_path / "f16.tflite", quantization="float16")
    assert f16.quantization == "float16"
    assert f16.size_bytes < 0.6 * f32.size_bytes
    dtypes = {t.dtype for t in read_tflite(f16.path).subgraphs[0].tensors}
    assert "FLOAT16" in dtypes
    assert f16.parity.passed and 0 < f16.parity.value <= 2e-2 * max(
        1.0, f16.parity.output_scale
    )
    assert f16.gpu.compatible, str(f16.gpu)


def test_dynamic_range_stores_int8_weights(tmp_path):
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(4)]
    )
    result = tflite(model, tmp_path / "dyn.tflite", quantization="dynamic")
    tensors = read_tflite(result.path).subgraphs[0].tensors
    assert any(t.dtype == "INT8" and t.is_constant for t in tensors)
    assert result.parity.metric == "top1_agreement"
    assert result.parity.passed


def test_int8_full_integer_with_int8_io(
    decisive_model, decisive_data, tmp_path
):
    x, labels = decisive_data
    result = tflite(
        decisive_model,
        tmp_path / "int8.tflite",
        quantization="int8",
        representative_data=x,
        int8_io=True,
    )
    assert result.int8_io
    assert result.input_details[0]["dtype"] == "int8"
    assert result.output_details[0]["dtype"] == "int8"
    assert result.parity.metric == "top1_agreement"
    assert result.parity.data == "representative_data"
    assert result.parity.num_samples == len(x)
    assert result.parity.value >= 0.95
    model_info = read_tflite(result.path).subgraphs[0]
    conv = [op for op in model_info.operators if op.name == "CONV_2D"][0]
    assert model_info.tensors[conv.inputs[0]].dtype == "INT8"

    # Independent check: quantize by hand, run LiteRT, compare classes.
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=result.path)
    runner = interp.get_signature_runner("serving_default")
    in_scale, in_zp = runner.get_input_details()["x"]["quantization"]
    agree = 0
    for i in range(16):
        q = np.clip(np.round(x[i : i + 1] / in_scale + in_zp), -128, 127)
        out = runner(x=q.astype(np.int8))["output_0"]
        agree += int(np.argmax(out) == labels[i])
    assert agree >= 15


def test_int8_float_io_runs_with_callable_dataset(
    decisive_model, decisive_data, tmp_path
):
    x, _ = decisive_data

    def representative_dataset():
        for i in range(32):
            yield [x[i : i + 1]]

    result = tflite(
        decisive_model,
        tmp_path / "int8f.tflite",
        quantization="int8",
        representative_data=representative_dataset,
    )
    assert result.input_details[0]["dtype"] == "float32"
    assert result.parity.num_samples == 32
    assert result.parity.passed


def test_int8_without_representative_data_fails_clearly(
    decisive_model, tmp_path
):
    with pytest.raises(ValueError, match="representative_data"):
        tflite(decisive_model, tmp_path / "x.tflite", quantization="int8")
    assert not (tmp_path / "x.tflite").exists()


def test_bad_arguments(decisive_model, decisive_data, tmp_path):
    with pytest.raises(ValueError, match="quantization"):
        tflite(decisive_model, tmp_path / "x.tflite", quantization="int4")
    with pytest.raises(ValueError, match="int8_io"):
        tflite(decisive_model, tmp_path / "x.tflite", int8_io=True)
    with pytest.raises(ValueError, match=r"\.tflite"):
        tflite(decisive_model, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="representative_data.*shape"):
        tflite(
            decisive_model,
            tmp_path / "x.tflite",
            quantization="int8",
            representative_data=np.zeros((4, 5, 5, 4), np.float32),
        )
    with pytest.raises(TypeError, match="keras.Model"):
        tflite("not a model", tmp_path / "x.tflite")


def test_unwritable_path_fails_before_conversion(
    decisive_model, tmp_path, monkeypatch
):
    def boom(*args, **kwargs):
        raise AssertionError("conversion must not start")

    monkeypatch.setattr(keras.Model, "export", boom)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="directory of `path`"):
        tflite(decisive_model, blocker / "model.tflite")
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        tflite(decisive_model, tmp_path / "dir.tflite")
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ValueError, match="Cannot write"):
            tflite(decisive_model, ro / "m.tflite")


def test_failing_parity_is_an_error_and_writes_nothing(
    decisive_model, tmp_path
):
    path = tmp_path / "tight.tflite"
    with pytest.raises(ExportParityError, match="does not reproduce") as info:
        tflite(decisive_model, path, quantization="float16", tolerance=1e-12)
    assert not info.value.parity.passed
    assert not path.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".knp_")]


def test_user_model_is_not_modified(decisive_model, tmp_path):
    before = [w.copy() for w in decisive_model.get_weights()]
    tflite(decisive_model, tmp_path / "m.tflite", quantization="dynamic")
    for a, b in zip(before, decisive_model.get_weights()):
        np.testing.assert_array_equal(a, b)
