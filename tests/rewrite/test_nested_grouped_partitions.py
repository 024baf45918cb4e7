"""A group read by two grouped layers with different group counts.

A `groups=2` producer feeding a `groups=4` consumer needs equal kept
counts in both chunkings; the selector balances their common refinement.
"""

import keras
import numpy as np
import pytest

import keras_neuronprune
from keras_neuronprune.core.selection import make_plan


def _model():
    inputs = keras.Input((6, 6, 8))
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="g2")(inputs)
    y = keras.layers.Conv2D(8, 1, name="pw")(inputs)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(8, 3, groups=4, name="g4")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(x))


def test_plan_balances_the_common_refinement():
    model = _model()
    (group,) = [
        g for g in keras_neuronprune.channel_groups(model) if g.name == "g2"
    ]
    assert len(group.partitions) == 2
    plan = make_plan(group, 1, 1.0, 1, np.ones(group.size, bool))
    assert plan.multiple == 4
    np.testing.assert_array_equal(plan.chunks, [0, 0, 1, 1, 2, 2, 3, 3])
    keep = plan.select(np.arange(8.0), 4)
    np.testing.assert_array_equal(keep, [1, 3, 5, 7])


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_uniform_and_pruned_keep_sets_thin_exactly(ratio):
    model = _model()
    keep = keras_neuronprune.uniform_keep(model, ratio)
    thin, _ = keras_neuronprune.thin_model(model, keep)
    assert len(keep["g2"]) % 4 == 0 and len(keep["g2"]) < 8
    assert thin.get_layer("g2").filters == len(keep["g2"])
    assert thin.get_layer("g4").filters == len(keep.get("g4", range(8)))
    pruned = keras_neuronprune.prune_structured(
        model, criterion="l1", pruning_ratio=ratio
    )
    pruned.controller.prune(pruned)
    stripped = keras_neuronprune.strip_pruning(pruned)
    x = np.random.default_rng(0).normal(size=(3, 6, 6, 8)).astype("float32")
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5
    )
    assert stripped.count_params() < model.count_params()
