import keras
import numpy as np
import pytest
import tensorflow as tf
from advanced_models import BUILDERS
from advanced_models import groups_of
from advanced_models import make_data
from advanced_models import prunable
from advanced_models import randomize_bn

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.hessian_spectral import HessianSpectral
from keras_neuronprune.criteria.hessian_spectral import hessian_spectral_prune
from keras_neuronprune.criteria.hessian_spectral import kronecker_factors
from keras_neuronprune.utils.gradients import activations_and_gradients

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    x = L.Dense(5, activation="tanh", name="d1")(inp)
    x = L.Dense(3, name="d2")(x)
    x = L.ReLU(name="r")(x)
    out = L.Dense(3, name="head")(x)
    return keras.Model(inp, out)


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = rng.integers(0, 3, size=n)
    return [(x[: n // 2], y[: n // 2]), (x[n // 2 :], y[n // 2 :])]


def test_kronecker_factors_dense_match_per_sample_gradients():
    model = _mlp()
    data = _data()
    factors = kronecker_factors(model, ["d2"], data, LOSS)
    f = factors["d2"]
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])
    h = keras.Model(model.inputs, model.get_layer("d1").output).predict(
        x, verbose=0
    )
    abar = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    np.testing.assert_allclose(f.a, abar.T @ abar / len(x), rtol=1e-5)
    per_sample = np.stack(
        [
            activations_and_gradients(
                model, ["d2"], x[i : i + 1], y[i : i + 1], LOSS
            )[1]["d2"][0]
            for i in range(len(x))
        ]
    )
    np.testing.assert_allclose(
        f.g, per_sample.T @ per_sample / len(x), rtol=1e-4, atol=1e-9
    )
    assert f.locations == 1


def test_kronecker_factors_conv_patches():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 5, 2))
    c = L.Conv2D(3, 3, padding="same", name="c")(inp)
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(c))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 5, 2)).astype("float32")
    data = [(x, np.array([0, 1, 1, 0]))]
    f = kronecker_factors(model, ["c"], data, LOSS, per_image=None)["c"]
    patches = tf.image.extract_patches(
        x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME"
    ).numpy()
    patches = patches.reshape(-1, 18)
    abar = np.concatenate([patches, np.ones((len(patches), 1))], axis=1)
    np.testing.assert_allclose(f.a, abar.T @ abar / len(abar), rtol=1e-5)
    assert f.locations == 25
    assert f.input_indices([1]).tolist() == list(range(1, 18, 2))


def test_spectral_terms_match_explicit_kronecker_products():
    model = _mlp()
    data = _data()
    groups = groups_of(model)
    criterion = HessianSpectral(flatness_weight=0.5, min_samples=8)
    scores = criterion.score(ScoringContext(model, groups, data, LOSS))
    factors = kronecker_factors(
        model, ["d1", "d2", "head"], data, LOSS, per_image=8
    )
    # Group d2: producer d2, consumer head.
    fd, fh = factors["d2"], factors["head"]
    d2 = model.get_layer("d2")
    w = np.concatenate([d2.kernel.numpy(), d2.bias.numpy()[None]])
    fisher = fd.locations * np.kron(fd.a, fd.g)
    expected_saliency = []
    for j in range(3):
        delta = np.zeros((w.shape[0], 3))
        delta[:, j] = w[:, j]
        expected_saliency.append(0.5 * delta.ravel() @ fisher @ delta.ravel())

    def rho(a, g):
        return np.linalg.eigvalsh(np.kron(a, g))[-1]

    base = rho(fd.a, fd.g) + rho(fh.a, fh.g)
    expected_flat = []
    for j in range(3):
        keep = [k for k in range(3) if k != j]
        keep_a = [k for k in range(fh.a.shape[0]) if k != j]
        after = rho(fd.a, fd.g[np.ix_(keep, keep)]) + rho(
            fh.a[np.ix_(keep_a, keep_a)], fh.g
        )
        expected_flat.append((base - after) / base)
    details = criterion.last_details["d2"]
    np.testing.assert_allclose(
        details["saliency"], expected_saliency, rtol=1e-4
    )
    np.testing.assert_allclose(details["flatness"], expected_flat, rtol=1e-4)
    np.testing.assert_allclose(
        scores["d2"],
        np.array(expected_saliency) * (1 - 0.5 * np.array(expected_flat)),
        rtol=1e-4,
    )


@pytest.mark.parametrize("name", ["resnet", "densenet"])
def test_hessian_spectral_on_conv_models(name):
    model = randomize_bn(BUILDERS[name]())
    groups = groups_of(model)
    scores = HessianSpectral(min_samples=16).score(
        ScoringContext(model, groups, make_data(n=16), LOSS)
    )
    assert set(scores) == {g.name for g in prunable(groups)}
    for g in prunable(groups):
        assert scores[g.name].shape == (g.size,)
        assert np.all(scores[g.name] >= 0)


def test_hessian_spectral_prune_trains_and_prunes():
    model = BUILDERS["resnet"]()
    before = [w.copy() for w in model.get_weights()]
    calls = []
    thin, history = hessian_spectral_prune(
        model,
        make_data(n=16),
        LOSS,
        ratio=0.25,
        iterations=2,
        train_steps=3,
        warmup_steps=5,
        train=lambda m, batches, steps: calls.append(steps),
    )
    assert calls == [5, 3, 3]  # warm-up, then after each prune round
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(history) == 2
    assert thin.count_params() < model.count_params()


def test_hessian_spectral_errors():
    model = _mlp()
    groups = groups_of(model)
    with pytest.raises(ValueError, match="loss"):
        HessianSpectral().score(ScoringContext(model, groups, _data(40)))
    with pytest.raises(ValueError, match="at least 32"):
        HessianSpectral().score(ScoringContext(model, groups, _data(), LOSS))
    with pytest.raises(ValueError, match="flatness_weight"):
        HessianSpectral(flatness_weight=2)


def test_deleted_spectral_radii_power_iteration_matches_eigvalsh():
    from keras_neuronprune.criteria.hessian_spectral import (
        deleted_spectral_radii,
    )

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 150)) + 0.3  # non-centred, like activations
    a = x.T @ x / 400
    deletions = [np.arange(3 * c, 3 * c + 3) for c in range(10)]
    got = deleted_spectral_radii(a, deletions)
    for d, value in zip(deletions, got):
        keep = np.setdiff1d(np.arange(150), d)
        ref = np.linalg.eigvalsh(a[np.ix_(keep, keep)])[-1]
        np.testing.assert_allclose(value, ref, rtol=1e-7)
