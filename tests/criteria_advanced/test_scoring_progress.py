"""Progress bars of the slow data-driven criteria, silenced by verbose=0."""

import keras
import numpy as np
from advanced_models import groups_of
from advanced_models import make_chain
from advanced_models import make_data

from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.hessian_spectral import HessianSpectral
from keras_neuronprune.criteria.singe import SInGE

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _context(verbose):
    model = make_chain()
    data = make_data(n=16, batch=8)
    return ScoringContext(model, groups_of(model), data, LOSS, verbose=verbose)


def _scores(criterion, verbose, capsys):
    scores = criterion.score(_context(verbose))
    return scores, capsys.readouterr().out


def test_singe_shows_one_step_per_removal_path(capsys):
    criterion = SInGE(steps=1, min_samples=8)
    quiet, out = _scores(criterion, 0, capsys)
    assert out == ""
    loud, out = _scores(criterion, 1, capsys)
    # The chain has two prunable groups (c1, c2): one path each.
    assert "2/2" in out and "path" in out
    for name in quiet:
        np.testing.assert_array_equal(quiet[name], loud[name])


def test_singe_per_channel_counts_every_channel_path(capsys):
    _, out = _scores(SInGE(steps=1, per_channel=True, min_samples=8), 1, capsys)
    assert "11/11" in out  # 6 + 5 channels


def test_hessian_spectral_shows_one_step_per_batch(capsys):
    criterion = HessianSpectral(min_samples=8)
    quiet, out = _scores(criterion, 0, capsys)
    assert out == ""
    loud, out = _scores(criterion, 1, capsys)
    assert "2/2" in out and "batch" in out
    for name in quiet:
        np.testing.assert_array_equal(quiet[name], loud[name])
