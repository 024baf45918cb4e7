"""Taylor criteria against per-example gate gradients."""

import keras
import numpy as np
import pytest
from criteria_helpers import residual_model_with_gates

from keras_neuronprune import criteria
from keras_neuronprune.criteria import ScoringContext
from keras_neuronprune.utils.gradients import loss_and_gradients

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, size=6)
    return [(x[:4], y[:4]), (x[4:], y[4:])]


def _per_example_gate_grads(gated, data):
    """Per batch: list over gates of arrays (N, 4) of dL_n/dw."""
    gates = [gated.get_layer("bn1_gate").gate, gated.get_layer("bn2_gate").gate]
    per_batch = []
    for x, y in data:
        rows = [
            loss_and_gradients(gated, gates, x[i : i + 1], y[i : i + 1], LOSS)[
                1
            ]
            for i in range(len(x))
        ]
        per_batch.append([np.array([r[k] for r in rows]) for k in range(2)])
    return per_batch


@pytest.fixture
def setup(resnet, groups_of):
    groups = groups_of(resnet)
    gated = residual_model_with_gates(resnet)
    data = _data()
    return resnet, gated, groups, data, _per_example_gate_grads(gated, data)


def _weighted(per_batch_values, data):
    sizes = np.array([len(y) for _, y in data], "float64")
    return sum(s * v for s, v in zip(sizes, per_batch_values)) / sizes.sum()


def test_taylor_first_order(setup):
    model, gated, groups, data, grads = setup
    expected = _weighted(
        [sum(g.mean(0) ** 2 for g in batch) for batch in grads], data
    )
    for scored in (model, gated):
        scores = criteria.get("taylor").score(
            ScoringContext(scored, groups, data=data, loss=LOSS)
        )
        np.testing.assert_allclose(scores["c1"], expected, rtol=1e-4)
    # Masked gate channels score 0 (read through the gates' outputs).
    gated.get_layer("bn1_gate").set_output_mask([1, 0, 1, 1])
    gated.get_layer("bn2_gate").set_output_mask([1, 0, 1, 1])
    scores = criteria.get("taylor").score(
        ScoringContext(gated, groups, data=data, loss=LOSS)
    )
    assert scores["c1"][1] == 0 and np.all(scores["c1"][[0, 2, 3]] > 0)


def test_taylor_second_order(setup):
    model, _, groups, data, grads = setup
    expected = _weighted(
        [
            sum((-g.mean(0) + 0.5 * (g**2).mean(0)) ** 2 for g in batch)
            for batch in grads
        ],
        data,
    )
    scores = criteria.get("taylor_so").score(
        ScoringContext(model, groups, data=data, loss=LOSS)
    )
    np.testing.assert_allclose(scores["c1"], expected, rtol=1e-4)


def test_taylor_activation_layerwise_l2(setup):
    model, _, groups, data, grads = setup
    spatial = 4 * 4  # bn1 and bn2 outputs are 4x4 maps
    per_gate = [
        _weighted([np.abs(batch[k]).mean(0) / spatial for batch in grads], data)
        for k in range(2)
    ]
    expected = sum(v / np.linalg.norm(v) for v in per_gate)
    scores = criteria.get("taylor_activation").score(
        ScoringContext(model, groups, data=data, loss=LOSS)
    )
    np.testing.assert_allclose(scores["c1"], expected, rtol=1e-4)
    raw = criteria.TaylorActivation(normalize="none", reduction="max").score(
        ScoringContext(model, groups, data=data, loss=LOSS)
    )
    np.testing.assert_allclose(raw["c1"], np.maximum(*per_gate), rtol=1e-4)


def test_momentum_averages_across_calls(setup):
    model, _, groups, data, _ = setup
    plain = criteria.Taylor()
    first = plain.score(ScoringContext(model, groups, data=data[:1], loss=LOSS))
    second = plain.score(
        ScoringContext(model, groups, data=data[1:], loss=LOSS)
    )
    smooth = criteria.Taylor(momentum=0.75)
    smooth.score(ScoringContext(model, groups, data=data[:1], loss=LOSS))
    got = smooth.score(ScoringContext(model, groups, data=data[1:], loss=LOSS))
    np.testing.assert_allclose(
        got["c1"], 0.75 * first["c1"] + 0.25 * second["c1"], rtol=1e-6
    )
    with pytest.raises(ValueError, match="momentum"):
        criteria.Taylor(momentum=1.0)


@pytest.mark.parametrize("alias", ["taylor", "taylor_activation", "taylor_so"])
def test_requires_data_and_loss(resnet, groups_of, alias):
    criterion = criteria.get(alias)
    assert criterion.requires_data
    groups = groups_of(resnet)
    with pytest.raises(ValueError, match="`data`"):
        criterion.score(ScoringContext(resnet, groups, loss=LOSS))
    with pytest.raises(ValueError, match="`loss`"):
        criterion.score(ScoringContext(resnet, groups, data=_data()))
