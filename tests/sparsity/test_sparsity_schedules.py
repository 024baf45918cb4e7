import keras
import numpy as np
import pytest

import keras_neuronprune.schedules
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity.schedules import ConstantSparsity
from keras_neuronprune.sparsity.schedules import PolynomialDecay


def test_constant_sparsity_prunes_on_its_period_inside_the_range():
    schedule = ConstantSparsity(0.7, begin_step=10, end_step=40, frequency=10)
    steps = [s for s in range(60) if schedule(s)[0]]
    assert steps == [10, 20, 30, 40]
    assert all(schedule(s)[1] == 0.7 for s in range(60))
    forever = ConstantSparsity(0.5, begin_step=0, frequency=3)
    assert forever(3000)[0] and not forever(3001)[0]


def test_polynomial_decay_is_the_shared_schedule_with_tfmot_formula():
    assert issubclass(
        PolynomialDecay, keras_neuronprune.schedules.PolynomialDecay
    )
    schedule = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=300, power=3)
    for step in (100, 150, 200, 299, 300, 500):
        p = min(1.0, (step - 100) / 200)
        expected = 0.9 + (0.1 - 0.9) * (1 - p) ** 3
        assert schedule(step)[1] == pytest.approx(expected)
    assert schedule(100)[0] and schedule(300)[0]
    assert not schedule(150)[0] and not schedule(400)[0]
    # end_step prunes even off the period, so the target is reached.
    odd = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=55, frequency=10)
    assert [s for s in range(80) if odd(s)[0]] == [0, 10, 20, 30, 40, 50, 55]


def test_unbound_schedule_takes_the_sparsity_of_prune_weights(mlp_factory):
    pruned = prune_weights(
        mlp_factory(),
        sparsity=0.6,
        schedule=PolynomialDecay(begin_step=0, end_step=10, frequency=5),
    )
    assert pruned.controller.schedule.final_ratio == 0.6
    assert pruned.controller.schedule_at(10) == (True, pytest.approx(0.6))


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: ConstantSparsity(1.0), "target_sparsity"),
        (lambda: ConstantSparsity(-0.1), "target_sparsity"),
        (lambda: ConstantSparsity(0.5, frequency=0), "frequency"),
        (lambda: ConstantSparsity(0.5, begin_step=5, end_step=2), "end_step"),
    ],
)
def test_schedules_reject_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_schedules_serialize_round_trip():
    for schedule in (
        ConstantSparsity(0.3, 5, 50, 5),
        PolynomialDecay(0.0, 0.8, 0, 100, power=2, frequency=10),
    ):
        config = keras.saving.serialize_keras_object(schedule)
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(schedule)
        assert again.get_config() == schedule.get_config()
        for step in (0, 5, 10, 60, 100):
            assert again(step) == schedule(step)


def test_constant_sparsity_returns_python_values():
    should, sparsity = ConstantSparsity(0.5, 0, -1, 5)(np.int64(5))
    assert should is True and isinstance(sparsity, float)
    assert ConstantSparsity(0.25).final_ratio == 0.25


def test_polynomial_decay_takes_tfmot_names_and_round_trips():
    schedule = PolynomialDecay(
        initial_sparsity=0.2, final_sparsity=0.8, begin_step=0, end_step=10
    )
    assert (schedule.initial_sparsity, schedule.final_sparsity) == (0.2, 0.8)
    config = schedule.get_config()
    assert config["initial_sparsity"] == 0.2 and config["final_sparsity"] == 0.8
    assert "final_pruning_ratio" not in config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert type(restored) is PolynomialDecay
    assert [restored(s) for s in range(12)] == [schedule(s) for s in range(12)]
    # A config written with the channel names (earlier releases) loads.
    old = PolynomialDecay.from_config(
        {
            "initial_pruning_ratio": 0.2,
            "final_pruning_ratio": 0.8,
            "end_step": 10,
        }
    )
    assert old.final_sparsity == 0.8
    with pytest.raises(ValueError, match="final_sparsity"):
        PolynomialDecay(initial_sparsity=0.5, final_sparsity=0.2)
    with pytest.raises(ValueError, match="initial_sparsity"):
        PolynomialDecay(initial_sparsity=1.5)
