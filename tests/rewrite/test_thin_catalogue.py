"""`thin_model` equals the zero-masked reference on every catalogue model."""

import keras
import numpy as np
import pytest

import keras_neuronprune
from keras_neuronprune.rewrite import zero_removed_inputs
from keras_neuronprune.testing import CATALOGUE
from keras_neuronprune.testing import assert_outputs_close
from keras_neuronprune.testing import assert_thin_matches
from keras_neuronprune.testing import model_catalogue as mc
from keras_neuronprune.testing import model_outputs
from keras_neuronprune.testing import random_inputs
from keras_neuronprune.testing import random_keep


def _group_at(groups, layer, role="output"):
    found = {
        id(g): g
        for g in groups
        for m in g.members
        if m.layer == layer and m.role == role
    }
    assert len(found) == 1, (layer, [g.name for g in found.values()])
    return next(iter(found.values()))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_thin_catalogue_model_matches_reference(name, seed, tmp_path):
    model = CATALOGUE[name]()
    groups = keras_neuronprune.channel_groups(model)
    keep = random_keep(groups, rng=seed)
    assert keep, [g.reason for g in groups]
    thin, report = assert_thin_matches(
        model,
        keep,
        groups=groups,
        rng=seed,
        rtol=1e-5,
        scale_floor=1e-3,
        tmp_dir=str(tmp_path),
    )
    assert report.params_after < report.params_before
    assert report.flops_after < report.flops_before
    assert report.params_after == keras_neuronprune.count_cost(thin).params


def test_conv_chain_param_count_is_exact():
    model = mc.conv2d()
    groups = keras_neuronprune.channel_groups(model)
    p, mid = _group_at(groups, "p"), _group_at(groups, "mid")
    keep = {p.name: np.array([0, 2, 5]), mid.name: np.array([1, 4])}
    thin, _ = assert_thin_matches(model, keep, groups=groups)
    kp, km = 3, 2
    expected = (
        (3 * 3 * 3 * kp + kp)  # p
        + 4 * kp  # bn
        + (3 * 3 * kp * km + km)  # mid
        + 4 * km  # bn2
        + (km * 4 + 4)  # c
    )
    assert thin.count_params() == expected
    np.testing.assert_array_equal(
        thin.get_layer("p").kernel.numpy(),
        model.get_layer("p").kernel.numpy()[..., [0, 2, 5]],
    )
    np.testing.assert_array_equal(
        thin.get_layer("bn").moving_variance.numpy(),
        model.get_layer("bn").moving_variance.numpy()[[0, 2, 5]],
    )
    np.testing.assert_array_equal(
        thin.get_layer("mid").kernel.numpy(),
        model.get_layer("mid").kernel.numpy()[:, :, [0, 2, 5]][..., [1, 4]],
    )


def test_flatten_dense_slices_rows_of_every_position():
    model = mc.flatten_dense()
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    keep = {p.name: np.array([1, 3])}
    thin, _ = assert_thin_matches(model, keep, groups=groups)
    rows = (np.arange(9)[:, None] * 4 + np.array([1, 3])[None, :]).reshape(-1)
    np.testing.assert_array_equal(
        thin.get_layer("mid").kernel.numpy(),
        model.get_layer("mid").kernel.numpy()[rows],
    )


def test_concatenate_slices_the_right_offsets():
    model = mc.concatenate()
    groups = keras_neuronprune.channel_groups(model)
    a, b = _group_at(groups, "pa"), _group_at(groups, "pb")
    keep = {a.name: np.array([0, 3]), b.name: np.array([1, 2, 5])}
    thin, _ = assert_thin_matches(model, keep, groups=groups)
    kept = [0, 3, 4 + 1, 4 + 2, 4 + 5]
    np.testing.assert_array_equal(
        thin.get_layer("c").kernel.numpy(),
        model.get_layer("c").kernel.numpy()[:, :, kept],
    )
    np.testing.assert_array_equal(
        thin.get_layer("bn").gamma.numpy(),
        model.get_layer("bn").gamma.numpy()[kept],
    )


def test_depthwise_multiplier_slices_kernel():
    model = mc.depthwise_conv2d_multiplier()
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    keep = {p.name: np.array([0, 4, 5])}
    thin, _ = assert_thin_matches(model, keep, groups=groups)
    dw = thin.get_layer("dw")
    assert dw.depth_multiplier == 2
    np.testing.assert_array_equal(
        dw.kernel.numpy(),
        model.get_layer("dw").kernel.numpy()[:, :, [0, 4, 5], :],
    )
    assert thin.get_layer("bn").gamma.shape == (6,)


def test_grouped_conv_keeps_equal_chunks_and_rejects_unequal():
    model = mc.grouped_conv2d()
    groups = keras_neuronprune.channel_groups(model)
    src = _group_at(groups, "g", role="input")
    out = _group_at(groups, "g")
    keep = {src.name: np.array([0, 3, 4, 7]), out.name: np.arange(0, 12, 3)}
    thin, _ = assert_thin_matches(model, keep, groups=groups)
    g = thin.get_layer("g")
    assert g.groups == 4 and g.filters == 4
    assert g.kernel.shape == (3, 3, 1, 4)
    for bad in ([0, 1, 2, 3], [0, 1, 2, 3, 4, 6]):
        with pytest.raises(ValueError, match="'g'"):
            keras_neuronprune.thin_model(model, {src.name: np.array(bad)})
    with pytest.raises(ValueError, match="'g'"):
        keras_neuronprune.thin_model(model, {out.name: np.array([0, 1, 2, 3])})


def test_empty_keep_is_a_noop():
    model = mc.residual_network()
    x = random_inputs(model, rng=0)
    thin, report = keras_neuronprune.thin_model(model, {})
    assert thin.count_params() == model.count_params()
    assert report.params_after == report.params_before
    assert_outputs_close(model_outputs(thin, x), model_outputs(model, x), 1e-6)


def test_keeping_every_channel_is_a_noop():
    model = mc.residual_network()
    groups = keras_neuronprune.channel_groups(model)
    keep = {g.name: np.arange(g.size) for g in groups if g.prunable}
    thin, _ = keras_neuronprune.thin_model(model, keep)
    assert thin.count_params() == model.count_params()
    x = random_inputs(model, rng=0)
    assert_outputs_close(model_outputs(thin, x), model_outputs(model, x), 1e-6)


def test_keep_accepts_lists_and_int32():
    model = mc.dense_2d()
    groups = keras_neuronprune.channel_groups(model)
    p = _group_at(groups, "p")
    for value in ([1, 2, 9], np.array([1, 2, 9], dtype="int32")):
        thin, _ = keras_neuronprune.thin_model(model, {p.name: value})
        assert thin.get_layer("p").units == 3


def test_reference_differs_from_original_and_ignores_removed_channels():
    model = mc.residual_network()
    groups = keras_neuronprune.channel_groups(model)
    keep = random_keep(groups, rng=4)
    ref = zero_removed_inputs(model, keep)
    assert ref.count_params() == model.count_params()
    x = random_inputs(model, rng=0)
    assert not np.allclose(model_outputs(ref, x)[0], model_outputs(model, x)[0])
    # Perturbing the removed filters of a producer must not change the
    # reference's output.
    stem = _group_at(groups, "stem")
    removed = np.setdiff1d(np.arange(stem.size), keep[stem.name])
    before = model_outputs(ref, x)
    layer = ref.get_layer("stem")
    kernel = layer.kernel.numpy()
    kernel[..., removed] += 5.0
    layer.kernel.assign(kernel)
    after = model_outputs(ref, x)
    assert_outputs_close(after, before, 1e-5)


def test_uniform_keep_thins_exactly():
    model = mc.residual_network()
    groups = keras_neuronprune.channel_groups(model)
    keep = keras_neuronprune.uniform_keep(model, 0.5)
    sizes = {g.name: g.size for g in groups if g.prunable}
    assert set(keep) <= set(sizes)
    for name, kept in keep.items():
        assert 1 <= len(kept) < sizes[name]
    assert_thin_matches(model, keep, groups=groups)
    keep4 = keras_neuronprune.uniform_keep(model, 0.5, round_to=4)
    for name, kept in keep4.items():
        assert len(kept) % 4 == 0 or len(kept) == sizes[name], (name, kept)


def test_thin_model_is_trainable_after_thinning():
    model = mc.residual_network()
    groups = keras_neuronprune.channel_groups(model)
    thin, _ = keras_neuronprune.thin_model(model, random_keep(groups, 0))
    thin.compile(optimizer="sgd", loss="mse")
    x = random_inputs(thin, rng=0, batch_size=4)[0]
    y = np.zeros((4, 3), "float32")
    history = thin.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert isinstance(thin, keras.Model)


def test_thin_model_with_unknown_spatial_size():
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", name="p")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.ReLU(name="relu")(y)
    y = keras.layers.Conv2D(4, 1, name="c")(y)
    model = mc.randomize_weights(keras.Model(x, y))
    groups = keras_neuronprune.channel_groups(model)
    keep = random_keep(groups, rng=0)
    assert keep
    thin, report = assert_thin_matches(model, keep, groups=groups)
    assert report.params_after < report.params_before
    assert thin.get_layer("p").filters == len(keep[_group_at(groups, "p").name])
