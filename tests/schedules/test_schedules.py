import json

import keras
import numpy as np
import pytest

from keras_neuronprune import schedules
from keras_neuronprune.schedules.base_pruning_schedule import (
    check_schedule_output,
)


def test_one_shot_prunes_once_at_step():
    s = schedules.OneShot(step=3).bind(0.5)
    assert [s(i) for i in range(5)] == [
        (False, 0.0),
        (False, 0.0),
        (False, 0.0),
        (True, 0.5),
        (False, 0.5),
    ]


def test_bind_keeps_explicit_ratio_and_does_not_mutate():
    s = schedules.OneShot(step=0)
    bound = s.bind(0.4)
    assert s.final_ratio is None and bound.final_ratio == 0.4
    assert schedules.OneShot(ratio=0.2).bind(0.4).final_ratio == 0.2


def test_iterative_removes_k_channels_every_n_steps():
    s = schedules.Iterative(channels_per_step=10, frequency=5, begin_step=2)
    s = s.bind(0.5, num_channels=64)  # 32 channels: 4 updates (10,20,30,32)
    out = {i: s(i) for i in range(30)}
    prune_steps = [i for i, (p, _) in out.items() if p]
    assert prune_steps == [2, 7, 12, 17]
    np.testing.assert_allclose(
        [out[i][1] for i in prune_steps], [10 / 64, 20 / 64, 30 / 64, 0.5]
    )
    assert out[25] == (False, 0.5)
    assert out[0] == (False, 0.0)


def test_iterative_unbound_raises():
    with pytest.raises(ValueError, match="num_channels=None"):
        schedules.Iterative()(0)


def test_polynomial_decay_matches_formula():
    s = schedules.PolynomialDecay(
        initial_ratio=0.1,
        final_ratio=0.6,
        begin_step=10,
        end_step=110,
        power=3,
        frequency=25,
    )
    for step in range(0, 130):
        should, ratio = s(step)
        if step < 10:
            assert (should, ratio) == (False, 0.0)
            continue
        p = min(1.0, (step - 10) / 100)
        expected = 0.6 + (0.1 - 0.6) * (1 - p) ** 3
        assert ratio == pytest.approx(expected)
        assert should == (step in (10, 35, 60, 85, 110))


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (schedules.OneShot, {"step": -1}, "step=-1"),
        (schedules.OneShot, {"ratio": 1.0}, "ratio=1.0"),
        (schedules.OneShot, {"step": 1.5}, "step=1.5"),
        (schedules.Iterative, {"channels_per_step": 0}, "channels_per_step=0"),
        (schedules.Iterative, {"frequency": 0}, "frequency=0"),
        (schedules.Iterative, {"final_ratio": -0.1}, "final_ratio=-0.1"),
        (schedules.PolynomialDecay, {"end_step": 0}, "end_step=0"),
        (schedules.PolynomialDecay, {"power": 0}, "power=0"),
        (schedules.PolynomialDecay, {"frequency": -2}, "frequency=-2"),
        (
            schedules.PolynomialDecay,
            {"initial_ratio": 0.5, "final_ratio": 0.2},
            "final_ratio=0.2",
        ),
    ],
)
def test_validation_names_argument_and_value(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.OneShot(step=7, ratio=0.3),
        schedules.Iterative(5, 3, 1, 0.5, 40),
        schedules.PolynomialDecay(0.1, 0.7, 2, 50, 2, 4),
    ],
)
def test_serialization_round_trip(schedule):
    config = json.loads(json.dumps(schedules.serialize(schedule)))
    restored = schedules.deserialize(config)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    assert [restored(i) for i in range(60)] == [schedule(i) for i in range(60)]
    generic = keras.saving.deserialize_keras_object(config)
    assert generic.get_config() == schedule.get_config()


def test_get_accepts_names_objects_and_callables():
    assert isinstance(schedules.get("one_shot"), schedules.OneShot)
    s = schedules.PolynomialDecay(final_ratio=0.5)
    assert schedules.get(s) is s

    def tfmot_like(step):
        return step % 2 == 0, 0.25

    wrapped = schedules.get(tfmot_like)
    assert isinstance(wrapped, schedules.CallableSchedule)
    assert wrapped.fn is tfmot_like
    assert check_schedule_output(wrapped, 2) == (True, 0.25)
    with pytest.raises(ValueError, match="schedule='linear'"):
        schedules.get("linear")
    with pytest.raises(ValueError, match="schedule=3"):
        schedules.get(3)


def test_check_schedule_output_rejects_bad_returns():
    with pytest.raises(ValueError, match="should_prune, ratio"):
        check_schedule_output(lambda step: 0.5, 0)
    with pytest.raises(ValueError, match="ratio=1.5"):
        check_schedule_output(lambda step: (True, 1.5), 0)
