"""GReg growing regulariser and its pick / grow / stabilise schedule."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_neuronprune import regularizers as knp_regularizers


def test_growing_penalty_matches_numpy_and_gradient():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 4))
    penalty = np.array([0.0, 0.5, 1.0, 2.0])
    reg = knp_regularizers.GrowingRegularizer(penalty)
    norms = (kernel**2).sum((0, 1, 2))
    np.testing.assert_allclose(
        float(reg(kernel.astype("float32"))),
        0.5 * np.sum(penalty * norms),
        rtol=1e-5,
    )
    v = tf.Variable(kernel.astype("float32"))
    with tf.GradientTape() as tape:
        value = reg(v)
    np.testing.assert_allclose(
        tape.gradient(value, v).numpy(), kernel * penalty, rtol=1e-5
    )
    dense = knp_regularizers.GrowingRegularizer(2, axis=-1)
    dense.set_penalty([1.0, 0.0])
    w = np.array([[1.0, 5.0], [2.0, 5.0]], "float32")
    np.testing.assert_allclose(float(dense(w)), 0.5 * 5.0)


def test_growing_config_carries_state():
    reg = knp_regularizers.GrowingRegularizer(3, axis=0)
    reg.set_penalty([0.1, 0.0, 0.2])
    reg.set_selection([1, 0, 1])
    again = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    np.testing.assert_allclose(again.penalty.numpy(), [0.1, 0.0, 0.2])
    np.testing.assert_array_equal(again.selection.numpy(), [1, 0, 1])
    assert again.axis == 0
    with pytest.raises(ValueError, match="penalty"):
        knp_regularizers.GrowingRegularizer(0)
    with pytest.raises(ValueError, match="selection"):
        knp_regularizers.GrowingRegularizer(2, selection=[2, 0])
    with pytest.raises(ValueError, match="shape"):
        reg.set_penalty([1.0])


def test_greg1_timeline():
    sched = knp_regularizers.GRegSchedule(
        "greg1",
        update_interval=5,
        granularity_prune=0.25,
        upper_limit=1.0,
        stabilize_interval=7,
        start_step=10,
    )
    selection = np.array([1, 0, 1, 0], "float32")
    undecided = -np.ones(4, "float32")
    assert sched.phase(3) == "wait" and not sched.needs_pick(9)
    assert sched.needs_pick(10) and sched.pick_step() == 10
    np.testing.assert_array_equal(sched.penalties(12, undecided), 0)
    np.testing.assert_allclose(
        sched.penalties(10, selection), [0.25, 0, 0.25, 0]
    )
    np.testing.assert_allclose(sched.penalties(16, selection), [0.5, 0, 0.5, 0])
    # Reaches the limit after 4 increments: step 10 + 3 * 5 = 25.
    assert sched.limit_step() == 25
    assert sched.phase(24) == "grow" and sched.phase(25) == "stabilize"
    np.testing.assert_allclose(sched.penalties(100, selection)[0], 1.0)
    assert not sched.done(31) and sched.done(32) and sched.phase(32) == "done"


def test_greg2_timeline():
    sched = knp_regularizers.GRegSchedule(
        "greg2",
        update_interval=2,
        granularity_pick=0.1,
        upper_limit_pick=0.3,
        granularity_prune=0.35,
        upper_limit=1.0,
        granularity_recover=-0.01,
        stabilize_interval=0,
    )
    undecided = -np.ones(3, "float32")
    np.testing.assert_allclose(sched.penalties(0, undecided), 0.1)
    np.testing.assert_allclose(sched.penalties(4, undecided), 0.3)
    assert sched.phase(5) == "grow_uniform"
    assert sched.pick_step() == 6 and sched.needs_pick(6)
    picked = np.array([0, 1, 0], "float32")
    np.testing.assert_allclose(sched.penalties(6, picked), [-0.01, 0.65, -0.01])
    np.testing.assert_allclose(sched.penalties(8, picked)[1], 1.0)
    assert sched.limit_step() == 8 and sched.done(8)


def test_schedule_validation_and_config():
    with pytest.raises(ValueError, match="variant"):
        knp_regularizers.GRegSchedule("greg3")
    with pytest.raises(ValueError, match="update_interval"):
        knp_regularizers.GRegSchedule(update_interval=0)
    with pytest.raises(ValueError, match="upper_limit_pick"):
        knp_regularizers.GRegSchedule("greg2", upper_limit_pick=2.0)
    sched = knp_regularizers.GRegSchedule("greg2", start_step=3)
    again = knp_regularizers.GRegSchedule.from_config(sched.get_config())
    assert again.get_config() == sched.get_config()
