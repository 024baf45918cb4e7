import itertools

import keras
import numpy as np
import pytest
from advanced_models import BUILDERS
from advanced_models import groups_of
from advanced_models import make_chain
from advanced_models import make_data
from advanced_models import prunable
from advanced_models import randomize_bn

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.thinet import ThiNet
from keras_neuronprune.criteria.thinet import greedy_removal_order
from keras_neuronprune.criteria.thinet import least_squares_scales
from keras_neuronprune.criteria.thinet import thinet_prune
from keras_neuronprune.utils.patches import patch_contributions
from keras_neuronprune.utils.patches import sample_locations


def _layer(kind):
    keras.utils.set_random_seed(1)
    if kind == "conv_same":
        layer = keras.layers.Conv2D(4, 3, padding="same")
    elif kind == "conv_strided":
        layer = keras.layers.Conv2D(4, 3, strides=2, padding="same")
    elif kind == "conv_dilated":
        layer = keras.layers.Conv2D(4, 2, dilation_rate=2, padding="valid")
    elif kind == "conv1d_causal":
        layer = keras.layers.Conv1D(4, 3, padding="causal")
        layer.build((None, 7, 6))
        return layer
    else:
        layer = keras.layers.Dense(4)
        layer.build((None, 6))
        return layer
    layer.build((None, 7, 7, 6))
    return layer


def _input(kind, rng):
    if kind == "dense":
        return rng.normal(size=(5, 6))
    if kind == "conv1d_causal":
        return rng.normal(size=(5, 7, 6))
    return rng.normal(size=(5, 7, 7, 6))


def _brute_error(layer, x, locations, removed):
    """Sum of squared pre-bias outputs of the removed channels, by Keras."""
    mask = np.zeros(6)
    mask[list(removed)] = 1.0
    out = np.asarray(layer(x * mask)) - np.asarray(layer.bias)
    flat = out.reshape(out.shape[0], -1, out.shape[-1])
    if out.ndim == 2:
        flat = out[:, None, :]
    cells = out.shape[1:-1]
    index = (
        np.ravel_multi_index(tuple(locations[:, 1:].T), cells) if cells else 0
    )
    picked = flat[locations[:, 0], index]
    return float(np.sum(picked.astype("float64") ** 2))


@pytest.mark.parametrize(
    "kind",
    ["conv_same", "conv_strided", "conv_dilated", "conv1d_causal", "dense"],
)
def test_thinet_objective_and_greedy_match_brute_force(kind):
    rng = np.random.default_rng(0)
    layer = _layer(kind)
    x = _input(kind, rng).astype("float32")
    # Channel 2 nearly cancels channel 0 in the next layer's output.
    x[..., 2] = -x[..., 0] * 0.9
    locations = sample_locations(layer, x.shape, 6, rng)
    contrib = patch_contributions(layer, x, locations)
    gram = np.einsum("sco,sdo->cd", contrib, contrib)

    # The Gram objective equals the Keras layer's output on every subset.
    for k in range(1, 7):
        for subset in itertools.combinations(range(6), k):
            idx = list(subset)
            np.testing.assert_allclose(
                gram[np.ix_(idx, idx)].sum(),
                _brute_error(layer, x, locations, subset),
                rtol=2e-4,
                atol=1e-4,
            )

    # Greedy order equals a greedy search run with the layer itself.
    order, errors = greedy_removal_order(gram)
    removed = []
    for _ in range(6):
        rest = [c for c in range(6) if c not in removed]
        costs = [_brute_error(layer, x, locations, removed + [c]) for c in rest]
        removed.append(rest[int(np.argmin(costs))])
    assert order.tolist() == removed
    np.testing.assert_allclose(
        errors[2], _brute_error(layer, x, locations, removed[:3]), rtol=2e-4
    )
    # First pick is the exhaustive optimum; later sets are upper bounds.
    assert order[0] == int(np.argmin(np.diag(gram)))
    best3 = min(
        gram[np.ix_(list(s), list(s))].sum()
        for s in itertools.combinations(range(6), 3)
    )
    assert errors[2] >= best3 - 1e-9


def test_least_squares_scales_match_lstsq():
    rng = np.random.default_rng(0)
    contrib = rng.normal(size=(50, 6, 3))
    gram = np.einsum("sco,sdo->cd", contrib, contrib)
    keep = np.array([0, 2, 5])
    w = least_squares_scales(gram, keep)
    a = contrib[:, keep, :].transpose(0, 2, 1).reshape(-1, 3)
    b = contrib.sum(axis=1).reshape(-1)
    ref, *_ = np.linalg.lstsq(a, b, rcond=None)
    np.testing.assert_allclose(w, ref, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_thinet_scores_are_ranks(name):
    model = randomize_bn(BUILDERS[name]())
    groups = groups_of(model)
    scores = ThiNet().score(ScoringContext(model, groups, make_data(n=16)))
    assert set(scores) == {g.name for g in prunable(groups)}
    for group in prunable(groups):
        assert sorted(scores[group.name]) == list(range(1, group.size + 1))


@pytest.mark.parametrize("name", ["resnet", "densenet"])
def test_thinet_prune_thins_and_leaves_original(name):
    model = randomize_bn(BUILDERS[name]())
    before = [w.copy() for w in model.get_weights()]
    calls = []
    thin, report = thinet_prune(
        model,
        make_data(n=16),
        ratio=0.5,
        fine_tune=lambda m, g: calls.append(g),
    )
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert report["params_after"] < report["params_before"]
    assert thin.count_params() == report["params_after"]
    assert calls == [entry["group"] for entry in report["groups"]]
    pruned = {entry["group"] for entry in report["groups"]}
    if name == "resnet":
        # The residual stream is skipped; the block-internal groups pruned.
        assert pruned == {"b0_c1", "b1_c1"}
    for entry in report["groups"]:
        assert len(entry["kept"]) == entry["size"] - round(entry["size"] / 2)
        for c in entry["consumers"]:
            assert c["error_rescaled"] <= c["error"] + 1e-9
    out = thin.predict_on_batch(make_data(n=16)[0][0])
    assert out.shape == (16, 3) and np.all(np.isfinite(out))


def test_thinet_rescale_is_folded_into_the_consumer():
    model = randomize_bn(make_chain())
    data = make_data(n=16)
    x = np.concatenate([b[0] for b in data])
    results = {}
    for rescale in (False, True):
        thin, report = thinet_prune(
            model,
            data,
            ratio=0.5,
            groups=["c1"],
            rescale=rescale,
            samples_per_image=None,
        )
        sub_old = keras.Model(model.inputs, model.get_layer("c2").output)
        sub_new = keras.Model(thin.inputs, thin.get_layer("c2").output)
        ref = sub_old.predict_on_batch(x)
        got = sub_new.predict_on_batch(x)
        # Pre-bias outputs; the bias is not touched by ThiNet.
        bias = model.get_layer("c2").bias.numpy()
        results[rescale] = np.sum((got - ref) ** 2) / np.sum((ref - bias) ** 2)
        entry = report["groups"][0]["consumers"][0]
        key = "error_rescaled" if rescale else "error"
        np.testing.assert_allclose(results[rescale], entry[key], rtol=1e-3)
    assert results[True] < results[False]


def test_thinet_errors():
    model = make_chain()
    with pytest.raises(ValueError, match="ratio"):
        thinet_prune(model, make_data(n=16), ratio=1.0)
    with pytest.raises(ValueError, match="groups"):
        thinet_prune(model, make_data(n=16), ratio=0.5, groups=["head"])
    with pytest.raises(ValueError, match="`data` is required"):
        ThiNet().score(ScoringContext(model, groups_of(model), None))
    with pytest.raises(ValueError, match="at least 16"):
        ThiNet().score(ScoringContext(model, groups_of(model), make_data(n=8)))
