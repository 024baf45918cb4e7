import keras
import numpy as np
import pytest
from advanced_models import BUILDERS
from advanced_models import groups_of
from advanced_models import make_data
from advanced_models import prunable
from advanced_models import randomize_bn

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.singe import SInGE
from keras_neuronprune.criteria.singe import singe_prune

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), dtype="float64")
    x = L.Dense(5, name="d1", dtype="float64")(inp)
    x = L.BatchNormalization(name="bn", dtype="float64")(x)
    x = L.Activation("tanh", name="act", dtype="float64")(x)
    out = L.Dense(3, name="head", dtype="float64")(x)
    model = keras.Model(inp, out)
    return randomize_bn(model)


def _loss(model, x, y):
    return float(np.mean(LOSS(y, model(x)).numpy()))


def _zeroed(model, channels):
    """Loss with the given d1 channels removed (filters and BN params)."""
    saved = [w.copy() for w in model.get_weights()]
    d1 = model.get_layer("d1")
    bn = model.get_layer("bn")
    kernel, bias = d1.kernel.numpy(), d1.bias.numpy()
    gamma, beta = bn.gamma.numpy(), bn.beta.numpy()
    kernel[:, channels] = 0
    bias[channels] = 0
    gamma[channels] = 0
    beta[channels] = 0
    d1.kernel.assign(kernel)
    d1.bias.assign(bias)
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    return saved


def test_singe_completeness():
    model = _mlp()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4))
    y = rng.integers(0, 3, size=16)
    data = [(x[:8], y[:8]), (x[8:], y[8:])]
    groups = groups_of(model)
    base = _loss(model, x, y)
    weights = [w.copy() for w in model.get_weights()]

    criterion = SInGE(steps=48, min_samples=8)
    ig = criterion.attributions(ScoringContext(model, groups, data, LOSS))
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # restored
    saved = _zeroed(model, list(range(5)))
    removed_all = _loss(model, x, y)
    model.set_weights(saved)
    np.testing.assert_allclose(ig["d1"].sum(), base - removed_all, rtol=1e-3)

    per_channel = SInGE(steps=48, per_channel=True, min_samples=8)
    ig = per_channel.attributions(ScoringContext(model, groups, data, LOSS))
    for c in range(5):
        saved = _zeroed(model, [c])
        drop = base - _loss(model, x, y)
        model.set_weights(saved)
        np.testing.assert_allclose(ig["d1"][c], drop, rtol=1e-3, atol=1e-6)
    scores = per_channel.score(ScoringContext(model, groups, data, LOSS))
    np.testing.assert_allclose(scores["d1"], np.abs(ig["d1"]), rtol=1e-6)


@pytest.mark.parametrize("name", ["resnet", "densenet"])
def test_singe_on_conv_models(name):
    model = randomize_bn(BUILDERS[name]())
    groups = groups_of(model)
    weights = [w.copy() for w in model.get_weights()]
    scores = SInGE(steps=2, min_samples=16).score(
        ScoringContext(model, groups, make_data(n=16), LOSS)
    )
    assert set(scores) == {g.name for g in prunable(groups)}
    for g in prunable(groups):
        assert scores[g.name].shape == (g.size,)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_singe_prune_loop():
    model = randomize_bn(BUILDERS["resnet"]())
    total = sum(g.size for g in prunable(groups_of(model)))
    tuned = []
    thin, history = singe_prune(
        model,
        make_data(n=16),
        LOSS,
        ratio=0.25,
        iterations=2,
        fine_tune=lambda m, batches: tuned.append(m.count_params()),
        steps=2,
    )
    assert len(history) == 2
    assert tuned == [h["params"] for h in history]
    assert sum(h["removed"] for h in history) == round(0.25 * total)
    assert thin.count_params() < model.count_params()
    assert thin.predict_on_batch(make_data(n=4)[0][0]).shape == (4, 3)


def test_singe_errors():
    model = BUILDERS["chain"]()
    groups = groups_of(model)
    with pytest.raises(ValueError, match="loss"):
        SInGE().score(ScoringContext(model, groups, make_data(n=32)))
    with pytest.raises(ValueError, match="`data` is required"):
        SInGE().score(ScoringContext(model, groups, None, LOSS))
    with pytest.raises(ValueError, match="at least 32"):
        SInGE().score(ScoringContext(model, groups, make_data(n=16), LOSS))
    with pytest.raises(ValueError, match="steps"):
        SInGE(steps=0)


def test_default_fine_tune_changes_weights():
    from keras_neuronprune.utils.iterative import default_fine_tune

    model = _mlp()
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 4)), rng.integers(0, 3, size=8))]
    before = model.get_layer("d1").kernel.numpy().copy()
    default_fine_tune(LOSS, learning_rate=0.1, steps=2)(model, batches)
    assert not np.allclose(before, model.get_layer("d1").kernel.numpy())
