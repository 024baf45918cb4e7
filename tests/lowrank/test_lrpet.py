import keras
import numpy as np
import pytest

from keras_neuronprune.lowrank import LowRankProjection
from keras_neuronprune.lowrank import energy_transfer_projection
from keras_neuronprune.lowrank import factorize_low_rank
from keras_neuronprune.lowrank.projection import bn_scale
from keras_neuronprune.lowrank.projection import conv_bn_pairs
from keras_neuronprune.lowrank.projection import kernel_matrix

L = keras.layers


def _resnet():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    h = L.Conv2D(12, 3, strides=2, padding="same", name="c1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU()(h)
    h = L.Conv2D(8, 3, padding="same", dilation_rate=2, name="c2")(h)
    s = L.Conv2D(8, 1, strides=2, name="short")(x)
    x = L.ReLU()(L.Add()([s, h]))
    d = L.Conv2D(6, 3, padding="same", activation="relu", name="dense_c")(x)
    x = L.Concatenate()([x, d])
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(16, activation="relu", name="fc")(x)
    out = L.Dense(3, name="head")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2.0, c))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
    return model


def _data(n=32):
    rng = np.random.default_rng(1)
    return (
        rng.normal(size=(n, 8, 8, 3)).astype("float32"),
        rng.integers(0, 3, size=n),
    )


@pytest.mark.parametrize("reduction_factor", [0.0, 0.3])
def test_energy_transfer_preserves_energy(reduction_factor):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(7, 12))
    projected, s = energy_transfer_projection(m, 3, reduction_factor)
    new_s = np.linalg.svd(projected, compute_uv=False)
    np.testing.assert_allclose(np.sum(new_s**2), np.sum(s**2), rtol=1e-10)
    np.testing.assert_allclose(np.sum(projected**2), np.sum(m**2), rtol=1e-10)
    if reduction_factor == 0:
        assert np.linalg.matrix_rank(projected, tol=1e-8) == 3
    np.testing.assert_allclose(new_s[3:], s[3:] * reduction_factor, atol=1e-9)
    # Same singular vectors: the head is only rescaled.
    ratio = new_s[:3] / s[:3]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_projection_callback_with_bn_rectification():
    model = _resnet()
    pairs = conv_bn_pairs(model)
    assert set(pairs) == {"stem", "c1"}  # c2 feeds an Add, not a BN
    before = {
        name: kernel_matrix(model.get_layer(name).kernel.numpy())
        for name in ("stem", "c1", "c2", "fc")
    }
    callback = LowRankProjection(prune_goal=0.5)
    x, y = _data()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    callback.set_model(model)
    info = callback.project(model)
    assert "head" not in info and "fc" in info and "dense_c" in info
    for name, old in before.items():
        new = kernel_matrix(model.get_layer(name).kernel.numpy())
        n = min(old.shape)
        r = max(1, int(np.floor(n - n * 0.5)))
        assert info[name]["rank"] == r
        assert np.linalg.matrix_rank(new, tol=1e-4 * np.abs(new).max()) == r
        alpha = bn_scale(pairs[name]) if name in pairs else np.ones(len(old))
        # Energy of the BN-rectified kernel is preserved.
        np.testing.assert_allclose(
            np.sum((alpha[:, None] * new) ** 2),
            np.sum((alpha[:, None] * old) ** 2),
            rtol=1e-5,
        )


def test_callback_runs_during_fit():
    model = _resnet()
    x, y = _data()
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callback = LowRankProjection(prune_goal=0.75, every_n_steps=1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert len(callback.history) == 2
    k = kernel_matrix(model.get_layer("c1").kernel.numpy())
    assert np.linalg.matrix_rank(k, tol=1e-4 * np.abs(k).max()) == 3  # 12 - 9
    config = callback.get_config()
    assert LowRankProjection.from_config(config).get_config() == config


# Keras' own `.keras` writer triggers this NumPy 2 warning.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)
def test_factorized_model_matches_projected_model(tmp_path):
    model = _resnet()
    x, _ = _data(8)
    model.compile(optimizer="sgd", loss="mse")
    LowRankProjection(prune_goal=0.6).project(model)
    weights = [w.copy() for w in model.get_weights()]
    small, report = factorize_low_rank(model)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # original untouched
    assert small.count_params() < model.count_params()
    assert report.params_after == small.count_params()
    names = {layer.name for layer in small.layers}
    assert {"c1", "c1_basis", "stem", "fc", "fc_basis"} <= names
    done = {f.name: f.rank for f in report.factorized}
    assert done["c1"] == max(1, int(np.floor(12 - 12 * 0.6)))
    basis = small.get_layer("c1_basis")
    assert basis.strides == (2, 2) and basis.kernel_size == (3, 3)
    assert small.get_layer("c1").kernel_size == (1, 1)
    np.testing.assert_allclose(
        small.predict_on_batch(x),
        model.predict_on_batch(x),
        rtol=1e-4,
        atol=1e-5,
    )
    path = tmp_path / "small.keras"
    small.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict_on_batch(x), small.predict_on_batch(x), rtol=1e-6
    )
    assert "rank" in str(report)


def test_factorize_with_explicit_ranks_is_the_svd_truncation():
    model = _resnet()
    x, _ = _data(4)
    small, report = factorize_low_rank(model, ranks={"c1": 2}, layers=["c1"])
    assert [f.name for f in report.factorized] == ["c1"]
    m = kernel_matrix(model.get_layer("c1").kernel.numpy())
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    truncated = (u[:, :2] * s[:2]) @ vt[:2]
    first = small.get_layer("c1_basis").kernel.numpy().reshape(-1, 2)
    second = small.get_layer("c1").kernel.numpy().reshape(2, -1)
    np.testing.assert_allclose((first @ second).T, truncated, atol=1e-5)


def test_lrpet_errors():
    model = _resnet()
    with pytest.raises(ValueError, match="prune_goal"):
        LowRankProjection(prune_goal=1.0)
    with pytest.raises(ValueError, match="prune_goal"):
        factorize_low_rank(model, prune_goal=-0.1)
    with pytest.raises(ValueError, match="ranks"):
        factorize_low_rank(model, ranks={"c1": 0})
    with pytest.raises(ValueError, match="layers"):
        factorize_low_rank(model, layers=["nope"])
    with pytest.raises(ValueError, match="stem_bn"):
        factorize_low_rank(model, layers=["stem_bn"])
