import numpy as np
import pytest

from keras_neuronprune.sparsity import _distributions
from keras_neuronprune.sparsity import _selection


def test_local_mask_prunes_the_lowest_scores_exactly():
    rng = np.random.default_rng(0)
    scores = rng.random((6, 10))
    mask = _selection.local_mask(scores, 0.35, _selection.Pattern(), 1)
    assert int((mask == 0).sum()) == 21
    assert scores[mask == 0].max() < scores[mask == 1].min()


def test_block_mask_prunes_whole_blocks_by_mean_score():
    rng = np.random.default_rng(1)
    scores = rng.random((8, 6))
    pattern = _selection.Pattern(block_size=(2, 3))
    mask = _selection.local_mask(scores, 0.5, pattern, 1)
    blocks = mask.reshape(4, 2, 2, 3)
    # Every 2x3 tile is all-kept or all-pruned.
    assert np.all(blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3)))
    assert int((mask == 0).sum()) == 24
    means = scores.reshape(4, 2, 2, 3).mean(axis=(1, 3))
    kept = blocks.max(axis=(1, 3)) == 1
    assert means[~kept].max() < means[kept].min()


@pytest.mark.parametrize("shape", [(8, 5), (3, 3, 8, 4)])
def test_m_by_n_mask_zeroes_m_of_every_n_input_channels(shape):
    rng = np.random.default_rng(2)
    scores = rng.random(shape)
    mask = _selection.m_by_n_mask(scores, (2, 4))
    groups = np.moveaxis(mask, -2, -1).reshape(-1, 4)
    assert np.all(groups.sum(axis=1) == 2)
    grouped_scores = np.moveaxis(scores, -2, -1).reshape(-1, 4)
    kept = np.where(groups == 1, grouped_scores, np.inf).min(axis=1)
    dropped = np.where(groups == 0, grouped_scores, -np.inf).max(axis=1)
    assert np.all(dropped < kept)


def test_global_masks_rank_across_layers():
    scores = {"a": np.array([[0.1, 0.9], [0.2, 0.8]]), "b": np.array([0.5])}
    masks = _selection.global_masks(
        scores, 0.4, _selection.Pattern(), {"a": 1, "b": 1}
    )
    np.testing.assert_array_equal(masks["a"], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(masks["b"], [1])


def test_pattern_checks_name_the_layer_and_argument():
    with pytest.raises(ValueError, match="'fc'.*block_size=\\(3, 1\\)"):
        _selection.check_block_size("fc", (8, 4), 1, (3, 1))
    with pytest.raises(ValueError, match="'conv'.*6 input channels"):
        _selection.check_m_by_n("conv", (3, 3, 6, 8), 1, (2, 4))
    with pytest.raises(ValueError, match="'dw'.*depthwise"):
        _selection.check_m_by_n("dw", (3, 3, 8, 1), 2, (2, 4))


def _erk_closed_form(shapes, sparsity):
    # density_l = eps * sum(shape) / prod(shape), eps from
    # sum_l density_l * N_l = sum_l (N_l - floor(sparsity * N_l)).
    raw = {n: np.sum(s) / np.prod(s) for n, s in shapes.items()}
    sizes = {n: np.prod(s) for n, s in shapes.items()}
    kept = sum(sizes[n] - np.floor(sparsity * sizes[n]) for n in shapes)
    eps = kept / sum(raw[n] * sizes[n] for n in shapes)
    return {n: 1 - eps * raw[n] for n in shapes}


def test_erk_matches_the_closed_form():
    shapes = {"c1": (3, 3, 16, 32), "c2": (3, 3, 32, 64), "fc": (256, 100)}
    got = _distributions.erk_sparsities(shapes, 0.8)
    expected = _erk_closed_form(shapes, 0.8)
    for name in shapes:
        assert got[name] == pytest.approx(expected[name], abs=1e-9)
    kept = sum((1 - got[n]) * np.prod(s) for n, s in shapes.items())
    total = sum(np.prod(s) for s in shapes.values())
    assert kept == pytest.approx(0.2 * total, abs=len(shapes))
    # Denser where fan-in + fan-out is large relative to the size.
    assert got["c1"] < got["c2"]


def test_erk_makes_tiny_layers_dense_and_rebalances():
    shapes = {"stem": (3, 3, 3, 8), "big": (3, 3, 64, 64), "fc": (64, 10)}
    got = _distributions.erk_sparsities(shapes, 0.9)
    assert got["stem"] == 0.0
    kept = sum((1 - got[n]) * np.prod(s) for n, s in shapes.items())
    n_zeros = sum(np.floor(0.9 * np.prod(s)) for s in shapes.values())
    total = sum(np.prod(s) for s in shapes.values())
    assert kept == pytest.approx(total - n_zeros, rel=1e-9)
    assert all(0 <= v < 1 for v in got.values())
