import keras
import numpy as np
import pytest

from keras_neuronprune.analysis import max_redundancy
from keras_neuronprune.analysis.max_redundancy import effective_rank
from keras_neuronprune.graph import channel_groups
from keras_neuronprune.utils.gradients import activations_and_gradients

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _bottleneck_model():
    # p's 8 channels reach the loss only through 3 linear logits whose
    # softmax cross-entropy gradients sum to zero, so the gradient matrix
    # w.r.t. p has rank 2: 6 of 8 channels are redundant.
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,))
    x = L.Dense(6, activation="tanh", name="a")(inp)
    p = L.Dense(8, name="p")(x)
    out = L.Dense(3, name="head")(p)
    return keras.Model(inp, out)


def _batches(n=64, dim=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype("float32")
    y = rng.integers(0, classes, size=n)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


def test_effective_rank():
    assert effective_rank([3.0, 4.0], 1.0) == 2
    assert effective_rank([4.0, 3.0, 0.0], 0.6) == 1  # 16 / 25
    assert effective_rank([4.0, 3.0, 0.0], 0.65) == 2
    assert effective_rank([0.0, 0.0], 0.9) == 0


def test_max_redundancy_detects_a_rank_bottleneck_and_matches_numpy():
    model = _bottleneck_model()
    data = _batches()
    ratios, details = max_redundancy(
        model, data, LOSS, energy=0.999, return_details=True
    )
    assert ratios["p"] == pytest.approx(1 - 2 / 8)
    assert details["p"]["rank"] == 2
    assert 0 <= ratios["a"] < 1
    # Singular values of the explicit per-sample gradient matrix.
    rows = []
    for x, y in data:
        for i in range(len(y)):
            _, g = activations_and_gradients(
                model, ["p"], x[i : i + 1], y[i : i + 1], LOSS
            )
            rows.append(g["p"][0])
    explicit = np.linalg.svd(np.array(rows).T, compute_uv=False)
    np.testing.assert_allclose(
        details["p"]["singular_values"][:2], explicit[:2], rtol=1e-3
    )


def test_max_redundancy_on_residual_and_concat_models():
    for build in (_resnet, _densenet):
        model = build()
        rng = np.random.default_rng(0)
        x = rng.normal(size=(8, 6, 6, 3)).astype("float32")
        y = rng.integers(0, 3, size=8)
        ratios = max_redundancy(model, [(x, y)], LOSS)
        prunable = {g.name for g in channel_groups(model) if g.prunable}
        assert set(ratios) == prunable
        assert all(0 <= r < 1 for r in ratios.values())


def _resnet():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, padding="same", name="stem")(inp)
    h = L.ReLU()(L.Conv2D(3, 3, padding="same", name="c1")(x))
    h = L.Conv2D(4, 3, padding="same", name="c2")(h)
    x = L.ReLU()(L.Add()([x, h]))
    out = L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def _densenet():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, padding="same", name="stem")(inp)
    h = L.Conv2D(3, 3, padding="same", name="d0")(L.ReLU()(x))
    x = L.Concatenate()([x, h])
    out = L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def test_max_redundancy_errors():
    model = _bottleneck_model()
    with pytest.raises(ValueError, match="energy"):
        max_redundancy(model, _batches(), LOSS, energy=0)
    with pytest.raises(ValueError, match="loss"):
        max_redundancy(model, _batches(), None)
    with pytest.raises(ValueError, match="`data` is required"):
        max_redundancy(model, None, LOSS)
    with pytest.raises(ValueError, match=r"at least 32 samples.*'p'"):
        max_redundancy(model, _batches(n=16), LOSS)
    with pytest.raises(ValueError, match="expected shape"):
        max_redundancy(model, [(np.zeros((4, 3)), np.zeros(4))], LOSS)
