"""GReg criterion: pick, growing penalties, scores and a training effect."""

import keras
import numpy as np
import pytest
from criteria_helpers import randomize

from keras_neuronprune import criteria
from keras_neuronprune import regularizers
from keras_neuronprune.criteria import ScoringContext


def _model():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    randomize(model)
    return model


def _attach(model, criterion):
    for layer in model.layers:
        reg = criterion.regularizer_for(layer)
        if reg is not None:
            regularizers.attach_regularizer(
                layer, criterion.regularized_weight(layer), reg
            )


def _l1(model, name):
    return np.abs(model.get_layer(name).kernel.numpy()).sum((0, 1, 2))


def test_greg1_pick_grow_score(groups_of):
    model = _model()
    groups = groups_of(model)
    assert sorted(g.name for g in groups) == ["c1", "c2"]
    greg = criteria.GReg(
        pruning_ratio=0.5,
        update_interval=2,
        granularity_prune=0.5,
        upper_limit=1.0,
        stabilize_interval=3,
    )
    _attach(model, greg)
    assert isinstance(
        model.get_layer("out").kernel_regularizer,
        regularizers.GrowingRegularizer,
    )
    assert greg.regularizer_for(keras.layers.ReLU()) is None
    l1 = {n: _l1(model, n) for n in ("c1", "c2")}
    greg.update(ScoringContext(model, groups, step=0))
    picked = greg.picked_channels(ScoringContext(model, groups))
    for name, count in (("c1", 2), ("c2", 3)):
        np.testing.assert_array_equal(
            picked[name], np.sort(np.argsort(l1[name])[:count])
        )
        reg = model.get_layer(name).kernel_regularizer
        expected = np.zeros(len(l1[name]))
        expected[picked[name]] = 0.5
        np.testing.assert_allclose(reg.penalty.numpy(), expected)
    # The unprunable output layer stays unregularised.
    np.testing.assert_array_equal(
        model.get_layer("out").kernel_regularizer.penalty.numpy(), 0
    )
    # The penalty term is 0.5 * sum(lambda_j * ||W_j||^2).
    k1 = model.get_layer("c1").kernel.numpy()
    lam = model.get_layer("c1").kernel_regularizer.penalty.numpy()
    np.testing.assert_allclose(
        float(model.get_layer("c1").losses[0]),
        0.5 * np.sum(lam * (k1**2).sum((0, 1, 2))),
        rtol=1e-5,
    )
    greg.update(ScoringContext(model, groups, step=2))
    assert model.get_layer("c1").kernel_regularizer.penalty.numpy().max() == 1.0
    assert greg.ready_step() == 5 and not greg.ready(4) and greg.ready(5)
    scores = greg.score(ScoringContext(model, groups))
    for name in ("c1", "c2"):
        s = scores[name]
        unpicked = np.setdiff1d(np.arange(len(s)), picked[name])
        assert s[picked[name]].max() < s[unpicked].min()
        np.testing.assert_allclose(s[unpicked], l1[name][unpicked], rtol=1e-6)


def test_growing_penalty_shrinks_picked_filters(groups_of):
    model = _model()
    groups = groups_of(model)
    greg = criteria.GReg(
        pruning_ratio=0.5,
        update_interval=1,
        granularity_prune=1.0,
        upper_limit=1.0,
    )
    _attach(model, greg)
    greg.update(ScoringContext(model, groups, step=0))
    picked = greg.picked_channels(ScoringContext(model, groups))["c2"]
    kept = np.setdiff1d(np.arange(6), picked)
    before = _l1(model, "c2")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 3)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")

    def no_data_loss(y_true, y_pred):
        # Only the penalty trains: W_j <- (1 - lr * lambda_j) W_j per step.
        return 0.0 * keras.ops.mean(y_pred)

    model.compile(keras.optimizers.SGD(0.1), no_data_loss)
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)  # 20 steps
    ratio = _l1(model, "c2") / before
    np.testing.assert_allclose(ratio[picked], 0.9**20, rtol=1e-4)
    np.testing.assert_allclose(ratio[kept], 1.0, rtol=1e-6)


def test_greg2_uniform_then_pick(groups_of):
    model = _model()
    groups = groups_of(model)
    greg = criteria.GReg(
        pruning_ratio=0.5,
        variant="greg2",
        update_interval=1,
        granularity_pick=0.1,
        upper_limit_pick=0.2,
        granularity_prune=0.4,
        granularity_recover=-0.01,
    )
    _attach(model, greg)
    greg.update(ScoringContext(model, groups, step=0))
    reg = model.get_layer("c2").kernel_regularizer
    np.testing.assert_allclose(reg.penalty.numpy(), 0.1)
    assert greg.picked_channels(ScoringContext(model, groups))["c2"].size == 0
    model.get_layer("c2").kernel.assign(model.get_layer("c2").kernel * 2)
    l1_now = _l1(model, "c2")
    greg.update(ScoringContext(model, groups, step=greg.schedule.pick_step()))
    picked = greg.picked_channels(ScoringContext(model, groups))["c2"]
    np.testing.assert_array_equal(picked, np.sort(np.argsort(l1_now)[:3]))
    penalty = reg.penalty.numpy()
    np.testing.assert_allclose(penalty[picked], 0.6, rtol=1e-6)
    np.testing.assert_allclose(np.delete(penalty, picked), -0.01, rtol=1e-6)


def test_greg_arguments():
    with pytest.raises(ValueError, match="pruning_ratio"):
        criteria.GReg(pruning_ratio=1.0)
    with pytest.raises(TypeError, match="Unknown GReg argument"):
        criteria.GReg(interval=3)
    greg = criteria.GReg(pruning_ratio={"c1": 0.25}, default_ratio=0.5)
    assert greg.ratio_for("c1") == 0.25 and greg.ratio_for("c9") == 0.5
    assert greg.variant == "greg1"
    assert greg.regularizer_for(keras.layers.SeparableConv2D(2, 1)) is None
