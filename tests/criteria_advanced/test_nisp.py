import keras
import numpy as np
import pytest
from advanced_models import BUILDERS
from advanced_models import groups_of
from advanced_models import make_data
from advanced_models import prunable
from advanced_models import randomize_bn
from scipy import stats

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.nisp import NISP
from keras_neuronprune.criteria.nisp import inf_fs
from keras_neuronprune.utils.features import call_site_map

L = keras.layers


def test_inf_fs_is_the_sum_over_all_paths():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    x[:, 3] = 2 * x[:, 0] + 0.01 * rng.normal(size=40)  # redundant
    x[:, 4] = 0.0  # constant
    std = x.std(axis=0) / x.std(axis=0).max()
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.nan_to_num(stats.spearmanr(x).correlation)
    a = 0.5 * np.maximum.outer(std, std) + 0.5 * (1 - np.abs(rho))
    r = 0.9 / np.max(np.abs(np.linalg.eigvals(a)))
    series = sum(np.linalg.matrix_power(r * a, k) for k in range(1, 400))
    np.testing.assert_allclose(inf_fs(x), series.sum(axis=1), rtol=1e-6)


def _set(model, name, *weights):
    model.get_layer(name).set_weights(
        [np.asarray(w, "float32") for w in weights]
    )


def _scores(model, frl_layer, frl_score):
    _, sites = call_site_map(model)
    frl = sites[frl_layer][0].inputs[0]
    criterion = NISP()
    tensor_scores = criterion.propagate(model, frl, np.asarray(frl_score))
    return criterion.group_scores(groups_of(model), sites, tensor_scores)


def test_nisp_propagation_hand_computed_chain():
    inp = keras.Input((2,))
    x = L.Dense(3, name="a")(inp)
    x = L.BatchNormalization(name="bn", epsilon=0.0)(x)
    x = L.ReLU(name="relu")(x)
    x = L.Dense(2, name="b")(x)
    out = L.Dense(2, name="head")(x)
    model = keras.Model(inp, out)
    w_a = [[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]]
    _set(model, "a", w_a, [0.1, 0.2, 0.3])
    gamma, var = [2.0, -1.0, 0.5], [4.0, 1.0, 0.25]
    _set(model, "bn", gamma, [0.0, 0, 0], [0.0, 0, 0], var)
    w_b = [[1.0, -1.0], [2.0, 0.0], [-3.0, 1.0]]
    _set(model, "b", w_b, [0.0, 0.0])
    s_b = np.array([1.0, 2.0])
    scores = _scores(model, "head", s_b)
    # b's output is the FRL; a's output: |W_b| s_b, then BN |gamma|/sqrt(var)
    after_relu = np.array([1 + 2, 2 + 0, 3 + 2])
    bn_scale = np.array([2 / 2, 1 / 1, 0.5 / 0.5])
    np.testing.assert_allclose(scores["b"], s_b)
    np.testing.assert_allclose(scores["a"], bn_scale * after_relu)


def test_nisp_propagation_hand_computed_skip_and_concat():
    inp = keras.Input((2,))
    p = L.Dense(3, name="p")(inp)
    q = L.Dense(3, name="q")(p)
    s = L.Add(name="add")([p, q])
    u = L.Dense(2, name="u")(inp)
    cat = L.Concatenate(name="cat")([s, u])
    out = L.Dense(2, name="head")(cat)
    model = keras.Model(inp, out)
    w_q = np.array([[1.0, 0, -1], [0, 2, 0], [1, 1, 1]])
    _set(model, "q", w_q, np.zeros(3))
    frl = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    scores = _scores(model, "head", frl)
    s_add = frl[:3]
    q_out = s_add
    p_out = s_add + np.abs(w_q) @ q_out  # skip plus the branch through q
    np.testing.assert_allclose(scores["p"], p_out + q_out)  # sum of producers
    np.testing.assert_allclose(scores["u"], frl[3:])


def test_nisp_propagation_conv_flatten():
    inp = keras.Input((4, 4, 1))
    c = L.Conv2D(2, 3, padding="same", name="c")(inp)
    d = L.Conv2D(3, 2, padding="valid", name="d")(c)  # -> (3, 3, 3)
    f = L.Flatten(name="flat")(d)
    out = L.Dense(2, name="head")(f)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    w_d = rng.normal(size=(2, 2, 2, 3))
    _set(model, "d", w_d, np.zeros(3))
    frl = rng.uniform(size=27)
    scores = _scores(model, "head", frl)
    d_out = frl.reshape(9, 3).sum(axis=0)  # flatten: positions -> channel
    np.testing.assert_allclose(scores["d"], d_out, rtol=1e-6)
    c_out = np.abs(w_d).sum(axis=(0, 1)) @ d_out
    np.testing.assert_allclose(scores["c"], c_out, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("ranking", ["inf_fs", "mean_abs"])
def test_nisp_scores_models(name, ranking):
    model = randomize_bn(BUILDERS[name]())
    groups = groups_of(model)
    scores = NISP(ranking=ranking).score(
        ScoringContext(model, groups, make_data(n=32))
    )
    assert set(scores) == {g.name for g in prunable(groups)}
    for g in prunable(groups):
        assert scores[g.name].shape == (g.size,)
        assert np.all(scores[g.name] > 0)


def test_nisp_errors():
    model = BUILDERS["chain"]()
    groups = groups_of(model)
    with pytest.raises(ValueError, match="`data` is required"):
        NISP().score(ScoringContext(model, groups, None))
    with pytest.raises(ValueError, match="at least 16"):
        NISP().score(ScoringContext(model, groups, make_data(n=8)))
    with pytest.raises(ValueError, match="ranking"):
        NISP(ranking="pca")
    with pytest.raises(ValueError, match="frl_layer"):
        NISP(frl_layer="nope").score(
            ScoringContext(model, groups, make_data(n=16))
        )
