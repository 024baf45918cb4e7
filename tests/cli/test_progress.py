"""Progress bars of long library steps, silenced with `verbose=0`."""

import keras
import numpy as np

from keras_neuronprune.analysis import sensitivity_analysis
from keras_neuronprune.criteria.base_criterion import progress


def test_progress_yields_every_item_and_draws_a_bar(capsys):
    assert list(progress(range(4), verbose=1, unit_name="batch")) == [
        0,
        1,
        2,
        3,
    ]
    out = capsys.readouterr().out
    assert "4/4" in out and "batch" in out
    assert list(progress(iter([1, 2]), verbose=1)) == [1, 2]  # no len
    assert "2/" in capsys.readouterr().out
    assert list(progress(range(3), verbose=0)) == [0, 1, 2]
    assert capsys.readouterr().out == ""


def _model():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs)


def test_sensitivity_analysis_progress_and_silence(capsys):
    model = _model()
    rng = np.random.default_rng(0)
    data = [(rng.normal(size=(8, 6, 6, 2)), rng.integers(0, 3, 8))]
    quiet = sensitivity_analysis(model, data, ratios=(0.5,), verbose=0)
    assert capsys.readouterr().out == ""
    loud = sensitivity_analysis(model, data, ratios=(0.25, 0.5), verbose=1)
    out = capsys.readouterr().out
    assert "2/2" in out and "model" in out
    np.testing.assert_allclose(quiet.results["c1"][0], loud.results["c1"][1])
