import numpy as np
import pytest
from advanced_models import BUILDERS
from advanced_models import groups_of
from advanced_models import make_chain
from advanced_models import make_data
from advanced_models import make_resnet
from advanced_models import prunable
from advanced_models import randomize_bn

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.chip import CHIP
from keras_neuronprune.criteria.chip import channel_independence
from keras_neuronprune.utils.features import feature_model


def _naive_ci(a):
    full = np.linalg.svd(a, compute_uv=False).sum()
    out = []
    for c in range(a.shape[0]):
        b = a.copy()
        b[c] = 0
        out.append(full - np.linalg.svd(b, compute_uv=False).sum())
    return np.array(out)


def test_channel_independence_matches_numpy_svd():
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(3, 6, 20))
    # A channel that is a combination of two others loses little.
    mats[:, 5] = mats[:, 0] + 0.5 * mats[:, 1]
    exact = channel_independence(mats, "exact")
    ref = np.stack([_naive_ci(m) for m in mats])
    np.testing.assert_allclose(exact, ref, rtol=1e-8, atol=1e-10)
    assert np.all(exact >= -1e-10)
    direct = channel_independence(mats, "eigvalsh")
    np.testing.assert_allclose(direct, ref, rtol=1e-8, atol=1e-10)
    # Non-negative ReLU-like maps, more channels than positions.
    relu = np.maximum(np.random.default_rng(1).normal(size=(2, 12, 9)), 0)
    np.testing.assert_allclose(
        channel_independence(relu),
        np.stack([_naive_ci(m) for m in relu]),
        rtol=1e-8,
        atol=1e-10,
    )
    first = channel_independence(mats, "first_order")
    # Convexity of the nuclear norm: the linearisation bounds the drop.
    assert np.all(first >= exact - 1e-9)


def test_channel_independence_rank_deficient_and_single_channel():
    a = np.zeros((1, 4, 5))
    a[0, 0] = 1.0
    a[0, 1] = 2.0  # same direction as row 0
    for method in ("exact", "eigvalsh"):
        np.testing.assert_allclose(
            channel_independence(a, method), _naive_ci(a[0])[None], atol=1e-9
        )
        single = np.ones((2, 1, 3))
        np.testing.assert_allclose(
            channel_independence(single, method), np.sqrt(3.0)
        )
    np.testing.assert_allclose(channel_independence(np.zeros((1, 3, 4))), 0.0)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_chip_scores_match_manual_svd(name):
    model = randomize_bn(BUILDERS[name]())
    groups = groups_of(model)
    data = make_data(n=32)
    scores = CHIP().score(ScoringContext(model, groups, data))
    assert set(scores) == {g.name for g in prunable(groups)}
    for group in prunable(groups):
        assert scores[group.name].shape == (group.size,)
        assert np.all(scores[group.name] >= -1e-6)
    # Recompute the last group by hand: the maps its consumers read (or,
    # when they read pooled vectors, the maps before pooling), one SVD per
    # channel.
    group = prunable(groups)[-1]
    from keras_neuronprune.utils.features import member_tensor

    tensors, positions = [], []
    for member in group.members:
        t = member_tensor(model, member)
        consumer = member.kind == "consumer" and member.role == "input"
        if len(t.shape) > 2 and (consumer or member.layer == "gap"):
            if not any(t is u for u in tensors):
                tensors.append(t)
                positions.append(member.channels.reshape(group.size, -1))
    if name != "densenet":
        assert len(tensors) == 1
    x = np.concatenate([b[0] for b in data])
    acts = feature_model(model, tensors).predict_on_batch(x)
    acts = acts if isinstance(acts, list) else [acts]
    total = 0
    for act, pos in zip(acts, positions):
        flat = act.reshape(act.shape[0], -1, act.shape[-1])
        per_image = [
            _naive_ci(
                np.transpose(flat[n][:, pos], (1, 0, 2)).reshape(group.size, -1)
            )
            for n in range(len(x))
        ]
        total = total + np.mean(per_image, axis=0)
    np.testing.assert_allclose(scores[group.name], total, rtol=1e-4, atol=1e-6)


def test_chip_errors():
    model = make_resnet()
    groups = groups_of(model)
    with pytest.raises(ValueError, match="`data` is required"):
        CHIP().score(ScoringContext(model, groups, None))
    bad_shape = [(np.zeros((32, 9, 9, 3), "float32"), np.zeros(32))]
    with pytest.raises(ValueError, match="expected shape"):
        CHIP().score(ScoringContext(model, groups, bad_shape))
    bad_dtype = [(np.full((32, 8, 8, 3), "a"), np.zeros(32))]
    with pytest.raises(ValueError, match="dtype"):
        CHIP().score(ScoringContext(model, groups, bad_dtype))
    with pytest.raises(ValueError, match="at least 32 calibration samples"):
        CHIP().score(ScoringContext(model, groups, make_data(n=8)))
    with pytest.raises(ValueError, match="method"):
        CHIP(method="svd")


def test_chip_non_finite_names_group():
    model = make_chain()
    kernel = model.get_layer("c2").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    groups = groups_of(model)
    with pytest.raises(ValueError, match="non-finite.*'c2'"):
        CHIP().score(ScoringContext(model, groups, make_data(n=32)))
