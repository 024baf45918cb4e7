import pytest

pytest.importorskip("ai_edge_litert")
tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_neuronprune.export import GpuCompatibilityError  # noqa: E402
from keras_neuronprune.export import check_gpu_compatibility  # noqa: E402
from keras_neuronprune.export import runtime_gpu_check  # noqa: E402
from keras_neuronprune.export import tflite  # noqa: E402


def _topk_model():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    top = keras.layers.Lambda(lambda t: keras.ops.top_k(t, k=2)[0])(x)
    return keras.Model(inp, [x, top])


def test_require_gpu_compatible_rejects_unsupported_op(tmp_path):
    path = tmp_path / "topk.tflite"
    with pytest.raises(GpuCompatibilityError, match="TOPK_V2") as info:
        tflite(_topk_model(), path, require_gpu_compatible=True)
    report = info.value.report
    assert not report.compatible
    [issue] = report.issues
    assert issue.op_name == "TOPK_V2"
    assert issue.subgraph == 0
    assert isinstance(issue.op_index, int)
    assert issue.outputs and "FLOAT32[1x2]" in issue.outputs[0]
    assert "subgraph 0, op" in str(issue)
    # No runtime GPU here: the LiteRT check is skipped, not an error.
    assert report.runtime["status"] in (
        "skipped",
        "fully_accelerated",
        "partially_accelerated",
    )
    assert not path.exists()


def test_without_requirement_the_report_still_lists_the_op(tmp_path):
    result = tflite(_topk_model(), tmp_path / "topk.tflite")
    assert not result.gpu.compatible
    assert result.gpu.incompatible_ops() == {"TOPK_V2": 1}
    assert result.gpu.runtime is None


def test_good_model_passes_requirement(tmp_path):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.Conv2D(8, 1)(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    result = tflite(
        keras.Model(inp, out),
        tmp_path / "ok.tflite",
        require_gpu_compatible=True,
    )
    assert result.gpu.compatible
    assert result.gpu.op_counts["CONV_2D"] == 2
    assert set(result.gpu.op_versions["CONV_2D"]) == {1}
    assert result.gpu.runtime is not None


def _convert_tf_function(fn, select_ops=False):
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], fn
    )
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    conv.target_spec.supported_ops = ops
    return conv.convert()


def test_flex_topk_flagged_cumsum_accepted():
    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)])
    def fn(x):
        values, _ = tf.math.top_k(x, k=4)
        return tf.math.cosh(x), tf.math.cumsum(x, axis=1), values

    report = check_gpu_compatibility(_convert_tf_function(fn, True))
    names = {i.op_name: i for i in report.issues}
    assert set(names) == {"FlexCosh", "TOPK_V2"}
    assert "Flex" in names["FlexCosh"].reason
    assert report.op_counts["CUMSUM"] == 1


def test_rank5_and_int32_tensors_flagged():
    @tf.function(input_signature=[tf.TensorSpec([1, 2, 3, 4, 5], tf.float32)])
    def fn(x):
        return tf.nn.relu(x) * 2.0

    report = check_gpu_compatibility(_convert_tf_function(fn))
    assert not report.compatible
    assert any("rank 5" in i.reason for i in report.issues)

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.int32)])
    def fn_int(x):
        return tf.maximum(x, 3)

    report = check_gpu_compatibility(_convert_tf_function(fn_int))
    assert any("INT32" in i.reason for i in report.issues)


def test_report_serializes_and_bad_input_rejected(tmp_path):
    result = tflite(_topk_model(), tmp_path / "m.tflite")
    d = result.gpu.to_dict()
    assert d["compatible"] is False
    assert d["issues"][0]["op_name"] == "TOPK_V2"
    assert result.to_dict()["gpu"]["num_ops"] == result.gpu.num_ops
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        check_gpu_compatibility(b"not a model at all")
    with pytest.raises(TypeError, match="tflite_model"):
        check_gpu_compatibility(12)


def test_runtime_check_skips_cleanly_without_gpu(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    result = tflite(model, tmp_path / "m.tflite")
    status = runtime_gpu_check(result.path)
    assert status["status"] in (
        "skipped",
        "fully_accelerated",
        "partially_accelerated",
    )
    assert isinstance(status["detail"], str) and status["detail"]
