"""Bad input: a clear ValueError, the model untouched, nothing returned."""

import keras
import numpy as np
import pytest

import keras_neuronprune
from keras_neuronprune.rewrite import zero_removed_inputs
from keras_neuronprune.testing import model_catalogue as mc
from keras_neuronprune.testing import weights_fingerprint


def _param_id(value):
    return getattr(value, "__name__", repr(value)[:20])


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(8, 3)
        self.head = keras.layers.Dense(2)

    def call(self, x):
        return self.head(self.conv(x))


@pytest.fixture(scope="module")
def model_and_groups():
    model = mc.residual_network()
    groups = keras_neuronprune.channel_groups(model)
    return model, groups


def _named(groups, layer):
    for g in groups:
        if any(m.layer == layer and m.role == "output" for m in g.members):
            return g
    raise AssertionError(layer)


def _assert_rejected(model, keep, match):
    """Both entry points raise `ValueError(match)` and leave `model` as is."""
    fingerprint = weights_fingerprint(model)
    config = model.get_config()
    for fn in (keras_neuronprune.thin_model, zero_removed_inputs):
        with pytest.raises(ValueError, match=match):
            fn(model, keep)
    assert weights_fingerprint(model) == fingerprint
    assert model.get_config() == config


def test_subclassed_model_is_rejected():
    model = _Subclassed()
    model(np.zeros((1, 6, 6, 3), "float32"))
    fingerprint = weights_fingerprint(model)
    with pytest.raises(ValueError, match="(?i)subclass"):
        keras_neuronprune.channel_groups(model)
    with pytest.raises(ValueError, match="(?i)subclass"):
        keras_neuronprune.thin_model(model, {})
    with pytest.raises(ValueError, match="(?i)subclass"):
        keras_neuronprune.uniform_keep(model, 0.5)
    assert weights_fingerprint(model) == fingerprint


@pytest.mark.parametrize(
    "not_a_model",
    [None, "resnet", keras.layers.Dense(3)],
    ids=_param_id,
)
def test_non_models_are_rejected(not_a_model):
    with pytest.raises((ValueError, TypeError), match="model"):
        keras_neuronprune.channel_groups(not_a_model)
    with pytest.raises((ValueError, TypeError), match="model"):
        keras_neuronprune.thin_model(not_a_model, {})


def test_empty_keep_is_rejected(model_and_groups):
    model, groups = model_and_groups
    g = _named(groups, "stem")
    _assert_rejected(model, {g.name: []}, rf"(?i){g.name}.*(empty|at least)")


@pytest.mark.parametrize(
    "bad", [[0, 8], [-1, 2], [0, 100]], ids=["size", "negative", "far"]
)
def test_out_of_range_keep_is_rejected(model_and_groups, bad):
    model, groups = model_and_groups
    g = _named(groups, "stem")
    assert g.size == 8
    _assert_rejected(model, {g.name: bad}, rf"(?i){g.name}.*range")


def test_duplicate_keep_is_rejected(model_and_groups):
    model, groups = model_and_groups
    g = _named(groups, "stem")
    _assert_rejected(model, {g.name: [0, 1, 1, 3]}, rf"(?i){g.name}.*duplicate")


def test_unsorted_keep_is_rejected(model_and_groups):
    model, groups = model_and_groups
    g = _named(groups, "stem")
    _assert_rejected(model, {g.name: [3, 1, 2]}, rf"(?i){g.name}.*sorted")


@pytest.mark.parametrize(
    "bad", [[0.0, 1.0], [[0, 1]], "01"], ids=["float", "2d", "string"]
)
def test_non_integer_keep_is_rejected(model_and_groups, bad):
    model, groups = model_and_groups
    g = _named(groups, "stem")
    fingerprint = weights_fingerprint(model)
    with pytest.raises((ValueError, TypeError), match=g.name):
        keras_neuronprune.thin_model(model, {g.name: bad})
    assert weights_fingerprint(model) == fingerprint


def test_unknown_group_is_rejected(model_and_groups):
    model, _ = model_and_groups
    _assert_rejected(model, {"no_such_group": [0]}, "no_such_group")


def test_unprunable_group_is_rejected(model_and_groups):
    model, groups = model_and_groups
    out = _named(groups, "c")
    assert not out.prunable
    _assert_rejected(model, {out.name: [0, 1]}, rf"(?i){out.name}.*prunable")
    inp = next(g for g in groups if "input" in str(g.reason))
    _assert_rejected(model, {inp.name: [0, 1]}, inp.name)


def test_inexact_group_without_opt_in_is_rejected():
    x = keras.Input((6, 6, 3))
    y = keras.layers.Conv2D(8, 3, name="p")(x)
    y = keras.layers.LayerNormalization(name="ln")(y)
    y = keras.layers.Conv2D(2, 1, name="c")(y)
    model = keras.Model(x, y)
    g = _named(keras_neuronprune.channel_groups(model), "p")
    _assert_rejected(model, {g.name: [0, 1]}, "allow_inexact")


def test_unequal_grouped_conv_keep_is_rejected():
    model = mc.grouped_conv2d()
    groups = keras_neuronprune.channel_groups(model)
    g = _named(groups, "p")
    _assert_rejected(model, {g.name: [0, 1, 2, 3, 4, 6]}, "'g'")


def test_keep_must_be_a_mapping(model_and_groups):
    model, _ = model_and_groups
    for bad in ([0, 1], "stem", 3):
        with pytest.raises((ValueError, TypeError), match="keep"):
            keras_neuronprune.thin_model(model, bad)


def test_one_bad_group_rejects_the_whole_keep_set(model_and_groups):
    model, groups = model_and_groups
    good = _named(groups, "stem")
    bad = _named(groups, "down")
    keep = {good.name: [0, 1, 2], bad.name: [5, 1]}
    _assert_rejected(model, keep, bad.name)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_uniform_keep_rejects_bad_ratio(model_and_groups, ratio):
    model, _ = model_and_groups
    with pytest.raises(ValueError, match="ratio"):
        keras_neuronprune.uniform_keep(model, ratio)


def test_uniform_keep_rejects_bad_round_to(model_and_groups):
    model, _ = model_and_groups
    for bad in (0, -4):
        with pytest.raises(ValueError, match="round_to"):
            keras_neuronprune.uniform_keep(model, 0.5, round_to=bad)
