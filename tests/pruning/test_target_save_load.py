"""PrunedModels pruned to a FLOPs or per-layer target save and load.

Their schedule is bound to a final ratio of 1.0 (the fraction of the
target reached), which the schedules' own constructors refuse as a
pruning ratio; `from_config` must bind it again.
"""

import keras
import numpy as np
import pytest

from keras_neuronprune import prune_structured
from keras_neuronprune import schedules


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(12, 3, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.mark.parametrize(
    "target",
    [
        {"flops_pruning_ratio": 0.5},
        {"pruning_ratio_dict": {"c1": 0.5, "c2": 0.25}},
        {"flops_pruning_ratio": 0.4, "schedule": schedules.Iterative(1)},
        {
            "flops_pruning_ratio": 0.4,
            "schedule": schedules.PolynomialDecay(end_step=4, frequency=2),
        },
    ],
    ids=["flops", "per_layer", "iterative", "polynomial"],
)
def test_target_pruned_model_round_trips(tmp_path, target):
    keras.utils.set_random_seed(0)
    pruned = prune_structured(_model(), criterion="l1", **target)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.models.load_model(path)
    original, restored = pruned.controller, loaded.controller
    assert restored.schedule.final_ratio == original.schedule.final_ratio
    for step in range(6):
        assert restored.schedule(step) == original.schedule(step)
    original.prune(pruned)
    restored.prune(loaded)
    assert restored.kept_counts(loaded) == original.kept_counts(pruned)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5
    )


def test_bound_schedule_config_binds_again():
    bound = schedules.OneShot(step=3).bind(1.0)
    restored = schedules.OneShot.from_config(bound.get_config())
    assert restored.final_ratio == 1.0 and restored(3) == (True, 1.0)
    # An explicit ratio of 1.0 is still refused where it is given.
    with pytest.raises(ValueError, match="pruning_ratio"):
        schedules.OneShot(step=3, pruning_ratio=1.0)
