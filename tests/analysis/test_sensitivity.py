import keras
import numpy as np
import pytest

from keras_neuronprune.analysis import SensitivityReport
from keras_neuronprune.analysis import sensitivity_analysis
from keras_neuronprune.graph import channel_groups
from keras_neuronprune.rewrite import thin_model

L = keras.layers


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, padding="same", name="stem")(inp)
    x = L.ReLU()(x)
    h = L.Conv2D(3, 3, padding="same", name="c1")(x)
    h = L.ReLU()(h)
    h = L.Conv2D(4, 3, padding="same", name="c2")(h)
    x = L.ReLU()(L.Add()([x, h]))
    c = L.Conv2D(2, 1, name="side")(x)
    x = L.Concatenate()([x, c])
    out = L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6, 6, 3)).astype("float32")
    return [(x[:12], np.zeros(12, "int64")), (x[12:], np.ones(12, "int64"))]


def test_sensitivity_matches_manual_pruning(tmp_path):
    model = _model()
    data = _data()
    report = sensitivity_analysis(model, data, ratios=[0.0, 0.5])
    prunable = {g.name for g in channel_groups(model) if g.prunable}
    assert set(report.results) == prunable
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])
    baseline = np.mean(model.predict_on_batch(x).argmax(-1) == y)
    assert report.baseline == pytest.approx(baseline)
    # Recompute group "c1" at 0.5 by hand: 3 filters, remove round(1.5) = 2
    # (half up), keep the largest-L1 one.
    l1 = np.abs(model.get_layer("c1").kernel.numpy()).sum(axis=(0, 1, 2))
    keep = np.sort(np.argsort(-l1)[:1]).tolist()
    thin, _ = thin_model(model, {"c1": keep})
    expected = np.mean(thin.predict_on_batch(x).argmax(-1) == y)
    assert report.results["c1"][1] == pytest.approx(expected)
    assert report.results["c1"][0] == report.baseline
    assert report.kept["c1"] == [3, 1]
    table = report.table()
    assert "c1" in table and "0.50" in table
    fig = report.plot(tmp_path / "sens.png")
    assert (tmp_path / "sens.png").stat().st_size > 0
    assert len(fig.axes[0].lines) == len(prunable) + 1


def test_max_ratios_and_custom_evaluate():
    report = SensitivityReport(
        0.9,
        [0.1, 0.3, 0.5],
        {"a": [0.9, 0.89, 0.5], "b": [0.5, 0.9, 0.9]},
        {"a": [9, 7, 5], "b": [9, 7, 5]},
        "accuracy",
    )
    assert report.max_ratios(0.02) == {"a": 0.3, "b": 0.0}
    calls = []
    model = _model()
    out = sensitivity_analysis(
        model,
        _data(),
        ratios=[0.5],
        groups=["c1"],
        evaluate=lambda m: calls.append(m.count_params()) or 1.0,
        metric_name="custom",
    )
    assert list(out.results) == ["c1"]
    np.testing.assert_allclose(out.results["c1"], [1.0])
    assert calls[0] == model.count_params() and calls[1] < calls[0]


def test_sensitivity_with_a_registered_criterion():
    from keras_neuronprune.criteria.chip import CHIP

    report = sensitivity_analysis(
        _model(),
        _data(),
        ratios=[0.5],
        groups=["c1"],
        criterion=CHIP(min_samples=8),
    )
    assert 0 <= report.results["c1"][0] <= 1


def test_sensitivity_errors():
    with pytest.raises(ValueError, match="ratios"):
        sensitivity_analysis(_model(), _data(), ratios=[1.0])
    with pytest.raises(ValueError, match="groups"):
        sensitivity_analysis(_model(), _data(), groups=["head"])
    with pytest.raises(ValueError, match="`data` is required"):
        sensitivity_analysis(_model(), None)
