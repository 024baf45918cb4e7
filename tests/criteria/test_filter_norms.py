"""`l1` / `l2` filter norms against NumPy."""

import keras
import numpy as np
import pytest
from criteria_helpers import group
from criteria_helpers import member

from keras_neuronprune import criteria
from keras_neuronprune.criteria import ScoringContext
from keras_neuronprune.layers import MaskedConv2D


def _norms(kernel, p, axis=-1):
    moved = np.moveaxis(kernel, axis, -1).reshape(-1, kernel.shape[axis])
    return (np.abs(moved) ** p).sum(0) ** (1 / p)


@pytest.mark.parametrize("alias,p", [("l1", 1), ("l2", 2)])
def test_residual_group_sums_producer_norms(resnet, groups_of, alias, p):
    groups = groups_of(resnet)
    assert [g.name for g in groups] == ["c1"]
    scores = criteria.get(alias).score(ScoringContext(resnet, groups))
    k1 = resnet.get_layer("c1").kernel.numpy()
    k2 = resnet.get_layer("c2").kernel.numpy()
    expected = _norms(k1, p) + _norms(k2, p)
    np.testing.assert_allclose(scores["c1"], expected, rtol=1e-6)
    assert scores["c1"].dtype == np.float64


def test_reduction_and_normalize(resnet, groups_of):
    groups = groups_of(resnet)
    k1 = resnet.get_layer("c1").kernel.numpy()
    k2 = resnet.get_layer("c2").kernel.numpy()
    n1, n2 = _norms(k1, 1), _norms(k2, 1)
    context = ScoringContext(resnet, groups)
    got = criteria.L1Norm(reduction="max", normalize="max").score(context)
    np.testing.assert_allclose(
        got["c1"], np.maximum(n1 / n1.max(), n2 / n2.max()), rtol=1e-6
    )
    got = criteria.L2Norm(reduction="mean", normalize="l2").score(context)
    m1, m2 = _norms(k1, 2), _norms(k2, 2)
    np.testing.assert_allclose(
        got["c1"],
        (m1 / np.linalg.norm(m1) + m2 / np.linalg.norm(m2)) / 2,
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="normalize"):
        criteria.L1Norm(normalize="sum")
    with pytest.raises(ValueError, match="reduction"):
        criteria.L1Norm(reduction="prod")


def test_include_consumers_reads_input_weights(resnet, groups_of):
    groups = groups_of(resnet)
    scores = criteria.L1Norm(include_consumers=True).score(
        ScoringContext(resnet, groups)
    )
    k1 = resnet.get_layer("c1").kernel.numpy()
    k2 = resnet.get_layer("c2").kernel.numpy()
    dense = resnet.get_layer("d").kernel.numpy()  # (4*4*4, 3), flattened
    producers = _norms(k1, 1) + _norms(k2, 1)
    c2_inputs = np.abs(k2).sum((0, 1, 3))
    dense_inputs = np.abs(dense).sum(1).reshape(-1, 4).sum(0)
    np.testing.assert_allclose(
        scores["c1"], producers + c2_inputs + dense_inputs, rtol=1e-6
    )


def test_masked_and_grouped_layers():
    inputs = keras.Input((5, 5, 4))
    x = MaskedConv2D(6, 3, name="m")(inputs)
    y = keras.layers.Conv2D(4, 1, groups=2, name="g")(x)
    t = keras.layers.Conv2DTranspose(3, 2, name="t")(y)
    model = keras.Model(inputs, t)
    rng = np.random.default_rng(0)
    for layer in (
        model.get_layer("m"),
        model.get_layer("g"),
        model.get_layer("t"),
    ):
        layer.kernel.assign(rng.normal(size=layer.kernel.shape))
    model.get_layer("m").set_output_mask([1, 1, 0, 1, 1, 1])
    groups = [
        group(
            "m",
            6,
            [
                member("m", "output", "producer", range(6)),
                member("g", "input", "consumer", range(6)),
            ],
        ),
        group("t", 3, [member("t", "output", "producer", range(3))]),
    ]
    scores = criteria.L1Norm(include_consumers=True).score(
        ScoringContext(model, groups)
    )
    km = model.get_layer("m").kernel.numpy()
    kg = model.get_layer("g").kernel.numpy()  # (1, 1, 3, 4): 2 groups
    own = np.abs(km).sum((0, 1, 2)) * [1, 1, 0, 1, 1, 1]
    consumer = np.zeros(6)
    for c in range(6):
        g_index, row = divmod(c, 3)
        consumer[c] = np.abs(kg[0, 0, row, g_index * 2 : g_index * 2 + 2]).sum()
    np.testing.assert_allclose(scores["m"], own + consumer, rtol=1e-6)
    # Conv2DTranspose kernel is (kh, kw, filters, in): output axis -2.
    kt = model.get_layer("t").kernel.numpy()
    np.testing.assert_allclose(
        scores["t"], np.abs(kt).sum((0, 1, 3)), rtol=1e-6
    )


def test_group_without_kernel_gets_top_score(resnet, groups_of):
    groups = groups_of(resnet)
    extra = group("pool", 2, [member("r1", "output", "channelwise", [0, 1])])
    with pytest.warns(UserWarning, match="pool"):
        scores = criteria.get("l1").score(
            ScoringContext(resnet, groups + [extra])
        )
    np.testing.assert_allclose(scores["pool"], scores["c1"].max())
    assert not criteria.get("l1").supports(extra, resnet)


def test_nested_model_paths():
    inner_in = keras.Input((4,))
    inner = keras.Model(
        inner_in, keras.layers.Dense(3, name="dense")(inner_in), name="inner"
    )
    outer_in = keras.Input((4,))
    model = keras.Model(outer_in, inner(outer_in), name="outer")
    groups = [
        group("g", 3, [member("inner/dense", "output", "producer", range(3))])
    ]
    scores = criteria.get("l2").score(ScoringContext(model, groups))
    kernel = inner.get_layer("dense").kernel.numpy()
    np.testing.assert_allclose(
        scores["g"], np.sqrt((kernel**2).sum(0)), rtol=1e-6
    )
    assert criteria.find_layer(model, "inner/dense") is inner.get_layer("dense")
    with pytest.raises(ValueError, match="inner/nope"):
        criteria.find_layer(model, "inner/nope")
