"""Barriers, inexact groups and user-registered layer handlers."""

import keras
import numpy as np
import pytest

import keras_neuronprune
from keras_neuronprune.graph import ChannelwiseHandler
from keras_neuronprune.testing import assert_thin_matches
from keras_neuronprune.testing import random_keep
from keras_neuronprune.testing import randomize_weights


def _param_id(value):
    return getattr(value, "__name__", repr(value)[:20])


L = keras.layers


def _group_at(groups, layer, role="output"):
    found = {
        id(g): g
        for g in groups
        for m in g.members
        if m.layer == layer and m.role == role
    }
    assert len(found) == 1, (layer, role, [g.name for g in found.values()])
    return next(iter(found.values()))


def _sandwich(middle, input_shape=(6, 6, 3), filters=8):
    """Input -> Conv2D 'p' -> middle -> Dense 'c' -> output."""
    x = keras.Input(input_shape)
    y = L.Conv2D(filters, 3, padding="same", name="p")(x)
    y = middle(y)
    y = L.Dense(4, name="c")(y)
    return randomize_weights(keras.Model(x, y))


class _Doubler(L.Layer):
    """A custom layer with no handler, made of keras.ops: it is traced."""

    def call(self, x):
        return x * 2.0


class _OwnWeight(L.Layer):
    """A custom layer that uses a weight of its own in `call`: a barrier
    (its handler would have to say how to slice the weight)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],))

    def call(self, x):
        return x * self.w


@keras.saving.register_keras_serializable(package="kn_tests")
class ChannelScale(L.Layer):
    """`y = x * scale`, one trainable scale per channel (custom layer)."""

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale",
            shape=(input_shape[-1],),
            initializer=keras.initializers.RandomUniform(0.5, 1.5),
        )

    def call(self, x):
        return x * self.scale


@pytest.mark.parametrize(
    "middle,layer_name",
    [
        (L.Lambda(lambda t: t * 2.0, name="lam"), "lam"),
        (_OwnWeight(name="ownweight"), "ownweight"),
        (L.Permute((3, 1, 2), name="perm"), "perm"),
        (L.Reshape((6, 48), name="reshape"), "reshape"),
    ],
    ids=["lambda", "custom_without_handler", "permute", "reshape"],
)
def test_barrier_blocks_group_and_names_layer(middle, layer_name):
    model = _sandwich(middle)
    for allow_inexact in (False, True):
        groups = keras_neuronprune.channel_groups(model, allow_inexact)
        p = _group_at(groups, "p")
        assert not p.prunable
        assert layer_name in p.reason, p.reason
    with pytest.raises(ValueError, match="p"):
        keras_neuronprune.thin_model(model, {p.name: np.arange(4)})


def test_unknown_layer_reason_says_how_to_register():
    groups = keras_neuronprune.channel_groups(_sandwich(_OwnWeight(name="d")))
    assert "register_layer_handler" in _group_at(groups, "p").reason
    assert "uses weights of its own" in _group_at(groups, "p").reason


def test_permute_and_reshape_keeping_channels_last_are_not_barriers():
    model = _sandwich(L.Permute((2, 1, 3), name="perm"))
    groups = keras_neuronprune.channel_groups(model)
    assert _group_at(groups, "p").prunable
    model = _sandwich(L.Reshape((36, 8), name="reshape"))
    groups = keras_neuronprune.channel_groups(model)
    assert _group_at(groups, "p").prunable
    assert_thin_matches(model, random_keep(groups, 0), groups=groups)


def test_barrier_only_blocks_its_own_groups():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.Conv2D(6, 1, name="mid")(y)
    y = L.Lambda(lambda t: t + 1.0, name="lam")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    model = randomize_weights(keras.Model(x, y))
    groups = keras_neuronprune.channel_groups(model)
    assert _group_at(groups, "p").prunable
    assert not _group_at(groups, "mid").prunable
    # A Lambda does not load in safe mode, so no .keras round trip here.
    assert_thin_matches(
        model, random_keep(groups, 0), groups=groups, check_save=False
    )


@pytest.mark.parametrize(
    "middle,partitioned",
    [
        (L.LayerNormalization(name="norm"), False),
        (L.GroupNormalization(groups=4, name="norm"), True),
        (L.Softmax(axis=-1, name="norm"), False),
    ],
    ids=["layer_norm", "group_norm", "softmax_channels"],
)
def test_inexact_groups_need_opt_in(middle, partitioned, tmp_path):
    model = _sandwich(middle)
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    assert not p.exact and not p.prunable
    assert "norm" in p.reason and "allow_inexact" in p.reason
    with pytest.raises(ValueError, match="p"):
        keras_neuronprune.thin_model(model, {p.name: np.arange(4)})

    groups = keras_neuronprune.channel_groups(model, allow_inexact=True)
    p = _group_at(groups, "p")
    assert not p.exact and p.prunable
    parts = dict(p.partitions)
    if partitioned:
        np.testing.assert_array_equal(parts["norm"], np.arange(8) // 2)
        with pytest.raises(ValueError, match="norm"):
            keras_neuronprune.thin_model(
                model, {p.name: np.arange(5)}, allow_inexact=True
            )
    else:
        assert "norm" not in parts
    keep = random_keep(groups, 3)
    assert p.name in keep
    thin, _ = assert_thin_matches(
        model,
        keep,
        allow_inexact=True,
        groups=groups,
        exact=False,
        tmp_dir=str(tmp_path),
    )
    assert thin.get_layer("p").output.shape[-1] == len(keep[p.name])


def test_layer_norm_over_non_channel_axis_is_exact():
    model = _sandwich(L.LayerNormalization(axis=1, name="norm"))
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    assert p.exact and p.prunable
    assert_thin_matches(model, random_keep(groups, 0), groups=groups)


def test_registered_custom_layer_becomes_prunable(tmp_path):
    model = _sandwich(ChannelScale(name="scale"))
    groups = keras_neuronprune.channel_groups(model)
    assert not _group_at(groups, "p").prunable
    assert "scale" in _group_at(groups, "p").reason

    keras_neuronprune.register_layer_handler(
        ChannelScale, ChannelwiseHandler(per_channel_weights=("scale",))
    )
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    assert p.prunable and "scale" in p.layers
    keep = random_keep(groups, 0)
    thin, _ = assert_thin_matches(
        model, keep, groups=groups, tmp_dir=str(tmp_path)
    )
    assert thin.get_layer("scale").scale.shape == (len(keep[p.name]),)


def test_subclass_with_unknown_weights_is_a_barrier():
    class BiasedReLU(L.ReLU):
        def build(self, input_shape):
            self.shift = self.add_weight(
                name="shift", shape=(input_shape[-1],), initializer="ones"
            )

        def call(self, x):
            return super().call(x) + self.shift

    groups = keras_neuronprune.channel_groups(_sandwich(BiasedReLU(name="b")))
    p = _group_at(groups, "p")
    assert not p.prunable and "'b'" in p.reason


def test_register_layer_handler_rejects_bad_arguments():
    with pytest.raises(TypeError, match="layer_class"):
        keras_neuronprune.register_layer_handler(
            ChannelScale(), ChannelwiseHandler()
        )
    with pytest.raises(TypeError, match="handler"):
        keras_neuronprune.register_layer_handler(ChannelScale, object())


def test_channels_first_layers_are_not_mis_sliced():
    x = keras.Input((3, 6, 6))
    y = L.Conv2D(8, 3, padding="same", data_format="channels_first", name="p")(
        x
    )
    y = L.BatchNormalization(axis=1, name="bn")(y)
    y = L.Conv2D(4, 1, data_format="channels_first", name="c")(y)
    model = randomize_weights(keras.Model(x, y))
    groups = keras_neuronprune.channel_groups(model)
    keep = random_keep(groups, 0)
    if keep:  # supported: must then be exact
        assert_thin_matches(model, keep, groups=groups)
    else:
        reasons = [g.reason for g in groups]
        assert any("channels_first" in str(r) or "p" in str(r) for r in reasons)


ops = keras.ops


@pytest.mark.parametrize(
    "middle,blocker",
    [
        (lambda y: ops.expand_dims(ops.sum(y, axis=-1), -1) * y, "sum"),
        (lambda y: y - ops.mean(y, axis=-1, keepdims=True), "mean"),
        (lambda y: ops.softmax(y), "softmax"),
        (lambda y: ops.transpose(y, (0, 3, 1, 2)), "transpose"),
        (lambda y: y[..., :4], "get_item"),
        (lambda y: ops.pad(y, ((0, 0), (1, 1), (1, 1), (0, 2))), "pad"),
    ],
    ids=["sum", "mean", "softmax", "transpose", "slice", "pad"],
)
def test_raw_ops_across_channels_are_barriers(middle, blocker):
    model = _sandwich(middle)
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    assert not p.prunable and blocker in p.reason, p.reason


@pytest.mark.parametrize(
    "activation",
    ["softmax", keras.activations.log_softmax],
    ids=_param_id,
)
def test_producer_with_softmax_activation_is_inexact(activation):
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 1, activation=activation, name="p")(x)
    y = L.Conv2D(4, 1, name="c")(y)
    groups = keras_neuronprune.channel_groups(keras.Model(x, y))
    p = _group_at(groups, "p")
    assert not p.exact and not p.prunable and "allow_inexact" in p.reason


def test_grouped_conv_over_two_groups_is_blocked():
    def middle(y):
        z = L.Conv2D(8, 1, name="b")(y)
        return L.Conv2D(8, 1, groups=2, name="g")(L.Concatenate()([y, z]))

    groups = keras_neuronprune.channel_groups(_sandwich(middle))
    for name in ("p", "b"):
        g = _group_at(groups, name)
        assert not g.prunable and "'g'" in g.reason
    assert _group_at(groups, "g").prunable


@pytest.mark.parametrize(
    "middle",
    [
        lambda y: ops.relu6(y + 3.0) / 6.0 * y,
        lambda y: L.BatchNormalization(axis=1)(y),
        lambda y: L.BatchNormalization(center=False, scale=False)(y),
        lambda y: L.Conv2D(6, 1, use_bias=False)(y),
        lambda y: L.Concatenate(axis=3)([y, L.Conv2D(4, 1)(y)]),
        lambda y: L.Subtract()([y, L.GlobalAveragePooling2D(keepdims=True)(y)]),
        lambda y: L.Identity()(y),
        lambda y: L.LayerNormalization(axis=[1, 2])(y),
        lambda y: L.Resizing(4, 4)(y),
        lambda y: L.Dense(8, activation="relu6")(y),
    ],
    ids=[
        "hard_swish_ops",
        "bn_spatial_axis",
        "bn_no_center_scale",
        "conv_no_bias",
        "concat_positive_axis",
        "subtract_broadcast",
        "identity",
        "layer_norm_spatial",
        "resizing",
        "dense_4d_activation",
    ],
)
def test_more_exact_constructs(middle, tmp_path):
    model = _sandwich(middle)
    groups = keras_neuronprune.channel_groups(model)
    assert _group_at(groups, "p").prunable
    assert_thin_matches(
        model,
        random_keep(groups, 0),
        groups=groups,
        scale_floor=1e-3,
        tmp_dir=str(tmp_path),
    )
