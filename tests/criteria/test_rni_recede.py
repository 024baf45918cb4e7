"""`prune_structured(criterion="rni")` trains the importances in, then prunes.

The default flow (no schedule): the first half of `fit` recedes the
channels due to go while the regulariser is on, pruning removes them at the
halfway step, and the second half fine-tunes with the regulariser off.
"""

import keras
import numpy as np
import pytest

import keras_neuronprune as knp
from keras_neuronprune.layers import BoundedBatchNormalization
from keras_neuronprune.regularizers import RNIRegularizer


def _data(n=512):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32")
    return x, y


def _model(bounded=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    h = inputs
    for i in (1, 2):
        h = keras.layers.Conv2D(16, 3, padding="same", name=f"c{i}")(h)
        norm = (
            BoundedBatchNormalization
            if bounded
            else (keras.layers.BatchNormalization)
        )
        h = norm(name=f"bn{i}")(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(h))


def _bounded(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, BoundedBatchNormalization)
    ]


def _fit(pruned, x, y, epochs, callbacks=None):
    pruned.compile(
        keras.optimizers.SGD(0.02, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return pruned.fit(
        x,
        y,
        batch_size=64,
        epochs=epochs,
        verbose=0,
        callbacks=[knp.callbacks.UpdatePruning()] + (callbacks or []),
    )


class _Probe(keras.callbacks.Callback):
    """Records importances and masks at the last batch before pruning."""

    def __init__(self, step):
        super().__init__()
        self.step = step
        self.importances = None

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.pruning_step.numpy()) == self.step:
            self.importances = np.concatenate(
                [layer.importances() for layer in _bounded(self.model)]
            )
            self.accuracy = _accuracy(self.model)


def _accuracy(model):
    x, y = _data()
    logits = model(x, training=False)
    return float(np.mean(np.argmax(np.asarray(logits), -1) == y))


def test_default_schedule_prunes_halfway_through_the_first_fit():
    x, y = _data()
    pruned = knp.prune_structured(_model(), criterion="rni", pruning_ratio=0.5)
    schedule = pruned.controller.schedule
    assert schedule.step is None and schedule.fraction == 0.5
    steps = 4 * 8  # 4 epochs of 8 batches
    probe = _Probe(steps // 2)
    _fit(pruned, x, y, epochs=4, callbacks=[probe])
    assert schedule.step == steps // 2
    masks = np.concatenate(
        [layer.channel_mask.numpy() for layer in _bounded(pruned)]
    )
    assert masks.sum() == 16  # half of 2 x 16 channels
    # Before pruning, the channels due to go had receded: bimodal, with
    # half of the importances at the receded value and a gap above them.
    imp = np.sort(probe.importances)
    assert np.all(imp[:16] < 2e-4)
    assert imp[16] > 0.05
    # After pruning the penalty is off: the regulariser contributes 0.
    for layer in _bounded(pruned):
        reg = layer.gamma_regularizer
        assert isinstance(reg, RNIRegularizer)
        assert float(reg.factor.numpy()) == 0.0
        assert float(reg(layer.gamma)) == 0.0


def test_masking_receded_channels_barely_changes_the_output():
    x, y = _data()
    pruned = knp.prune_structured(
        _model(),
        criterion="rni",
        pruning_ratio=0.5,
        schedule=knp.schedules.OneShot(step=10_000),
    )
    pruned.controller.schedule.step = 32
    _fit(pruned, x, y, epochs=4)  # ends at step 32, before pruning
    before = np.asarray(pruned(x, training=False))
    pruned.controller.prune(pruned)
    after = np.asarray(pruned(x, training=False))
    scale = np.abs(before).max()
    assert np.abs(after - before).max() < 0.05 * scale


def test_recede_off_leaves_importances_to_the_regulariser():
    x, y = _data()
    pruned = knp.prune_structured(
        _model(),
        criterion=knp.criteria.RNI(recede=False),
        pruning_ratio=0.5,
        schedule=knp.schedules.OneShot(step=10_000),
    )
    _fit(pruned, x, y, epochs=2)
    imp = np.concatenate([layer.importances() for layer in _bounded(pruned)])
    assert imp.min() > 0.01


def test_planned_keep_changes_no_state():
    pruned = knp.prune_structured(_model(), criterion="rni", pruning_ratio=0.5)
    controller = pruned.controller
    weights = [w.copy() for w in pruned.get_weights()]
    keep = controller.planned_keep(pruned, step=0)
    counts = [len(v) for v in keep.values()]
    assert sum(counts) == 16 and min(counts) >= 3  # global, min 3
    for a, b in zip(weights, pruned.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(controller._score_count.numpy()) == 0


def test_model_built_with_bounded_batchnorm_is_accepted_and_kept():
    model = _model(bounded=True)
    gammas = [layer.gamma.numpy().copy() for layer in _bounded(model)]
    pruned = knp.prune_structured(model, criterion="rni", pruning_ratio=0.5)
    for layer, gamma in zip(_bounded(pruned), gammas):
        np.testing.assert_allclose(
            layer.importances(), 1 / (1 + np.exp(-gamma)), atol=2e-3
        )


def test_one_shot_fraction_plans_its_step_and_round_trips():
    schedule = knp.schedules.OneShot(step=None, fraction=0.25, ratio=0.5)
    assert schedule(0) == (False, 0.0)
    schedule.plan(start_step=10, total_steps=100)
    assert schedule.step == 35
    assert schedule(35) == (True, 0.5)
    schedule.plan(start_step=0, total_steps=8)  # planned once only
    assert schedule.step == 35
    clone = knp.schedules.OneShot.from_config(schedule.get_config())
    assert clone.step == 35 and clone.fraction == 0.25
    with pytest.raises(ValueError, match="steps_per_epoch"):
        knp.schedules.OneShot(step=None, fraction=0.5).plan(0, None)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fraction": 1.5}, "fraction=1.5"),
        ({"step": None}, "step=None"),
    ],
)
def test_one_shot_fraction_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        knp.schedules.OneShot(**kwargs)


def test_rni_argument_validation():
    with pytest.raises(ValueError, match="receded_importance=0.7"):
        knp.criteria.RNI(receded_importance=0.7)
    with pytest.raises(ValueError, match="recede='yes'"):
        knp.criteria.RNI(recede="yes")
