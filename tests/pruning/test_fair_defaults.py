"""One target builds one architecture, whatever the criterion (#15 item 5)."""

import keras
import numpy as np
import pytest
from pruning_testlib import small_cnn

from keras_neuronprune.pruning import prune_structured
from keras_neuronprune.rewrite import uniform_keep

X = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
Y = np.arange(16) % 4
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _kept(criterion, ratio):
    model = small_cnn()
    pruned = prune_structured(
        model,
        criterion=criterion,
        pruning_ratio=ratio,
        data=[(X[:8], Y[:8])],
        loss=LOSS,
        # bn_scale and rni measure channels through a BatchNormalization.
        ignored_layers=["fc1"],
    )
    assert not pruned.controller.global_pruning
    pruned.controller.prune(pruned)
    return pruned.controller.kept_counts(pruned)


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_every_criterion_keeps_the_uniform_counts_by_default(ratio):
    uniform = {
        name: len(channels)
        for name, channels in uniform_keep(small_cnn(), ratio).items()
        if "fc1" not in name
    }
    assert uniform
    for criterion in ("l1", "bn_scale", "rni", "taylor", "random"):
        kept = _kept(criterion, ratio)
        assert {k: v for k, v in kept.items() if k in uniform} == uniform, (
            criterion
        )


def test_global_ranking_is_still_available():
    model = small_cnn()
    pruned = prune_structured(
        model, criterion="bn_scale", pruning_ratio=0.5, global_pruning=True
    )
    assert pruned.controller.global_pruning
