"""The `keras-neuronprune` command line: inspect and thin."""

import keras
import pytest

from keras_neuronprune import cli


def test_inspect_prints_groups_and_cost(capsys):
    assert cli.main(["inspect", "MobileNet", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "channel groups" in out and "prunable" in out
    assert "it is a model input" in out
    assert "parameters" in out and "FLOPs" in out


def test_thin_writes_a_smaller_loadable_model(tmp_path, capsys):
    path = str(tmp_path / "thin.keras")
    argv = ["thin", "MobileNet", "--ratio", "0.5", "--round-to", "8"]
    assert cli.main(argv + ["--output", path]) == 0
    thin = keras.models.load_model(path)
    full = keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3))
    assert thin.count_params() < 0.5 * full.count_params()
    conv_widths = [
        layer.filters
        for layer in thin.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.name != "conv_preds"
    ]
    assert all(w % 8 == 0 for w in conv_widths), conv_widths
    assert "total params" in capsys.readouterr().out


def test_unknown_model_is_a_clear_error(capsys):
    assert cli.main(["inspect", "NotANet"]) == 2
    assert "Unknown model 'NotANet'" in capsys.readouterr().err


def test_bad_ratio_is_a_clear_error(tmp_path, capsys):
    out = str(tmp_path / "x.keras")
    argv = ["thin", "MobileNet", "--ratio", "1.5", "--output", out]
    assert cli.main(argv) == 2
    assert "ratio=1.5" in capsys.readouterr().err


@pytest.mark.parametrize("name,size", [("InceptionV3", 75), ("ResNet50", 32)])
def test_smallest_input_size(name, size):
    assert cli.smallest_input_size(name) == size
