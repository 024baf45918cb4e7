import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_neuronprune.core import PrunedModel  # noqa: E402
from keras_neuronprune.core import PruningController  # noqa: E402
from keras_neuronprune.export import onnx  # noqa: E402
from keras_neuronprune.export import tflite  # noqa: E402


class _RecordingController(PruningController):
    """Strips by rebuilding the functional graph as a plain keras.Model."""

    def __init__(self):
        self.calls = 0

    def strip(self, model):
        self.calls += 1
        plain = keras.Model(model.inputs, model.outputs, name="stripped")
        return plain


def _pruned_model(controller):
    inp = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2)(x)
    return PrunedModel(inp, out, controller=controller)


def test_pruned_model_is_stripped_before_export(tmp_path):
    controller = _RecordingController()
    model = _pruned_model(controller)
    result = tflite(model, tmp_path / "p.tflite")
    assert controller.calls == 1
    assert result.stripped
    assert result.parity.passed
    assert "stripped" in str(result)

    result = onnx(model, tmp_path / "p.onnx")
    assert controller.calls == 2 and result.stripped


def test_pruned_model_without_controller_is_rejected(tmp_path):
    model = _pruned_model(None)
    with pytest.raises(ValueError, match="without a controller"):
        tflite(model, tmp_path / "p.tflite")


def test_controller_that_cannot_strip_is_rejected(tmp_path):
    model = _pruned_model(PruningController())
    with pytest.raises(ValueError, match="cannot strip"):
        tflite(model, tmp_path / "p.tflite")
