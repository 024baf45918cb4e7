"""`random`, the `criteria.get` registry and serialisation."""

import keras
import numpy as np
import pytest
from criteria_helpers import group
from criteria_helpers import member

from keras_neuronprune import criteria
from keras_neuronprune.criteria import ScoringContext


def _groups():
    return [
        group("a", 5, [member("x", "output", "producer", range(5))]),
        group("b", 3, [member("y", "output", "producer", range(3))]),
        group("c", 2, [member("z", "output", "producer", range(2))], False),
    ]


def test_random_is_seeded_and_step_dependent():
    groups = _groups()
    first = criteria.RandomCriterion(seed=4).score(ScoringContext(None, groups))
    again = criteria.RandomCriterion(seed=4).score(
        ScoringContext(None, groups[::-1])
    )
    assert sorted(first) == ["a", "b"]  # unprunable groups are not scored
    np.testing.assert_array_equal(first["a"], again["a"])
    assert first["a"].shape == (5,) and np.all(
        (first["a"] >= 0) & (first["a"] < 1)
    )
    other_seed = criteria.RandomCriterion(seed=5).score(
        ScoringContext(None, groups)
    )
    later = criteria.RandomCriterion(seed=4).score(
        ScoringContext(None, groups, step=7)
    )
    assert not np.allclose(first["a"], other_seed["a"])
    assert not np.allclose(first["a"], later["a"])
    with pytest.raises(ValueError, match="seed"):
        criteria.RandomCriterion(seed=-1)


ALIASES = {
    "l1": criteria.L1Norm,
    "l2": criteria.L2Norm,
    "bn_scale": criteria.BNScale,
    "l1_gamma": criteria.BNScale,
    "rni": criteria.RNI,
    "taylor": criteria.Taylor,
    "taylor_activation": criteria.TaylorActivation,
    "taylor_so": criteria.TaylorSecondOrder,
    "bn_stats": criteria.BNStatistics,
    "greg": criteria.GReg,
    "random": criteria.RandomCriterion,
}


@pytest.mark.parametrize("alias,cls", sorted(ALIASES.items()))
def test_get_alias_and_round_trip(alias, cls):
    criterion = criteria.get(alias)
    assert type(criterion) is cls
    assert criteria.get(criterion) is criterion
    assert type(criteria.get(cls.__name__)) is cls
    blob = criteria.serialize(criterion)
    assert blob["registered_name"] == f"keras_neuronprune>{cls.__name__}"
    again = criteria.get(blob)
    assert type(again) is cls and again.get_config() == criterion.get_config()
    assert type(keras.saving.deserialize_keras_object(blob)) is cls
    assert cls.__name__ in repr(criterion)


def test_non_default_configs_round_trip():
    for criterion in (
        criteria.L1Norm(
            reduction="max", normalize="l2", include_consumers=True
        ),
        criteria.BNScale(strength=0.0, normalize="max"),
        criteria.RNI(strength=1e-3, shift=0.0),
        criteria.Taylor(momentum=0.9, max_samples=32),
        criteria.BNStatistics(statistic="second_moment"),
        criteria.GReg(
            pruning_ratio={"g": 0.3}, variant="greg2", update_interval=3
        ),
        criteria.RandomCriterion(seed=9),
    ):
        again = criteria.deserialize(criteria.serialize(criterion))
        assert again.get_config() == criterion.get_config()


def test_get_errors():
    with pytest.raises(ValueError, match="Unknown criterion"):
        criteria.get("no_such_criterion")
    with pytest.raises(TypeError, match="identifier"):
        criteria.get(3)
    assert set(ALIASES) <= set(criteria.all_criteria())
