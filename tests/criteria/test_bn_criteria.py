"""`bn_scale`, `rni` and `bn_stats` against NumPy."""

import math

import keras
import numpy as np
import pytest
from criteria_helpers import group
from criteria_helpers import member
from criteria_helpers import randomize

from keras_neuronprune import criteria
from keras_neuronprune import regularizers
from keras_neuronprune.criteria import ScoringContext
from keras_neuronprune.criteria.bn_statistics import rectified_gaussian_moment
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.layers import MaskedBatchNormalization


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_bn_scale_sums_abs_gamma(resnet, groups_of):
    groups = groups_of(resnet)
    g1 = resnet.get_layer("bn1").gamma.numpy()
    g2 = resnet.get_layer("bn2").gamma.numpy()
    scores = criteria.get("bn_scale").score(ScoringContext(resnet, groups))
    np.testing.assert_allclose(scores["c1"], np.abs(g1) + np.abs(g2), rtol=1e-6)
    scores = criteria.BNScale(reduction="max", normalize="mean").score(
        ScoringContext(resnet, groups)
    )
    a1, a2 = np.abs(g1), np.abs(g2)
    np.testing.assert_allclose(
        scores["c1"], np.maximum(a1 / a1.mean(), a2 / a2.mean()), rtol=1e-6
    )


def test_bn_scale_regularizer_and_masks():
    criterion = criteria.BNScale(strength=1e-5)
    reg = criterion.regularizer_for(keras.layers.BatchNormalization())
    assert isinstance(reg, regularizers.SlimmingRegularizer)
    assert reg.strength == 1e-5
    assert criterion.regularizer_for(keras.layers.Dense(2)) is None
    assert criterion.regularizer_for(BoundedBatchNormalization()) is None
    assert (
        criteria.BNScale(strength=0).regularizer_for(
            keras.layers.BatchNormalization()
        )
        is None
    )
    assert criterion.regularized_weight(keras.layers.BatchNormalization()) == (
        "gamma"
    )
    inputs = keras.Input((3,))
    bn = MaskedBatchNormalization(name="bn")
    model = keras.Model(inputs, bn(inputs))
    bn.gamma.assign([-2.0, 3.0, 0.5])
    bn.set_output_mask([1, 0, 1])
    groups = [group("bn", 3, [member("bn", "output", "channelwise", range(3))])]
    scores = criteria.BNScale().score(ScoringContext(model, groups))
    np.testing.assert_allclose(scores["bn"], [2.0, 0.0, 0.5])


def _bounded_model(bounded=True):
    # Channel groups are computed on the original model (plain BN); the
    # criterion reads the training clone with the same layer names.
    bn = (
        BoundedBatchNormalization
        if bounded
        else keras.layers.BatchNormalization
    )
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, name="d1")(inputs)
    x = bn(name="b1")(x)
    y = keras.layers.Dense(4, name="d2")(x)
    y = bn(name="b2")(y)
    z = keras.layers.Add()([x, y])
    h = keras.layers.Dense(3, name="plain")(z)  # a group without BN
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    randomize(model)
    return model


def test_rni_reads_bounded_scales(groups_of):
    model = _bounded_model()
    model.get_layer("b2").set_output_mask([1, 1, 0, 1])
    groups = groups_of(_bounded_model(bounded=False))
    names = sorted(g.name for g in groups)
    assert names == ["d1", "plain"]
    s1 = _sigmoid(model.get_layer("b1").gamma.numpy())
    s2 = _sigmoid(model.get_layer("b2").gamma.numpy()) * [1, 1, 0, 1]
    with pytest.warns(UserWarning, match="plain"):
        scores = criteria.get("rni").score(ScoringContext(model, groups))
    np.testing.assert_allclose(scores["d1"], np.maximum(s1, s2), rtol=1e-6)
    np.testing.assert_array_equal(scores["plain"], np.ones(3))
    scores = criteria.RNI(reduction="mean").score(
        ScoringContext(model, [g for g in groups if g.name == "d1"])
    )
    np.testing.assert_allclose(scores["d1"], (s1 + s2) / 2, rtol=1e-6)


def test_rni_regularizer_and_error(resnet, groups_of):
    criterion = criteria.RNI(strength=1e-3, shift=0.0)
    reg = criterion.regularizer_for(BoundedBatchNormalization())
    assert isinstance(reg, regularizers.RNIRegularizer)
    assert (reg.strength, reg.shift) == (1e-3, 0.0)
    assert criterion.regularizer_for(keras.layers.BatchNormalization()) is None
    with pytest.raises(ValueError, match="BoundedBatchNormalization"):
        criterion.score(ScoringContext(resnet, groups_of(resnet)))


def test_rectified_gaussian_moments_match_monte_carlo():
    rng = np.random.default_rng(0)
    means = np.array([-1.0, 0.0, 0.7, 2.0, -0.3])
    stds = np.array([0.5, 1.0, 2.0, 0.1, 0.0])
    z = means + stds * rng.normal(size=(400_000, 1))
    relu = np.maximum(z, 0)
    np.testing.assert_allclose(
        rectified_gaussian_moment(means, stds, "mean"),
        relu.mean(0),
        atol=0.01,
    )
    np.testing.assert_allclose(
        rectified_gaussian_moment(means, stds, "second_moment"),
        (relu**2).mean(0),
        atol=0.02,
        rtol=0.01,
    )


def test_bn_stats_formula(resnet, groups_of):
    groups = groups_of(resnet)

    def expected_mean(layer):
        gamma = np.abs(resnet.get_layer(layer).gamma.numpy().astype("float64"))
        beta = resnet.get_layer(layer).beta.numpy().astype("float64")
        cdf = np.array(
            [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in beta / gamma]
        )
        pdf = np.exp(-0.5 * (beta / gamma) ** 2) / math.sqrt(2 * math.pi)
        return beta * cdf + gamma * pdf

    scores = criteria.get("bn_stats").score(ScoringContext(resnet, groups))
    np.testing.assert_allclose(
        scores["c1"], expected_mean("bn1") + expected_mean("bn2"), rtol=1e-6
    )
    assert np.all(scores["c1"] >= 0)
    with pytest.raises(ValueError, match="statistic"):
        criteria.BNStatistics(statistic="median")


def test_bn_stats_dead_channel_scores_zero():
    inputs = keras.Input((3,))
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(inputs))
    bn.gamma.assign([1.0, 1e-8, 0.0])
    bn.beta.assign([0.0, -5.0, 0.0])
    groups = [group("bn", 3, [member("bn", "output", "channelwise", range(3))])]
    scores = criteria.get("bn_stats").score(ScoringContext(model, groups))
    np.testing.assert_allclose(
        scores["bn"], [1 / math.sqrt(2 * math.pi), 0, 0], atol=1e-9
    )
