import glob
import os

import keras
import numpy as np
import pytest

from keras_neuronprune.callbacks import PruningSummaries
from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.core import PrunedModel
from keras_neuronprune.core import PruningController


class RecordingController(PruningController):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, model):
        self.calls.append(("train_begin",))

    def on_train_batch_begin(self, model, step):
        self.calls.append(("batch_begin", step))

    def on_train_batch_end(self, model, step, logs=None):
        self.calls.append(("batch_end", step, sorted(logs or {})))

    def on_epoch_end(self, model, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))

    def summary_scalars(self, model):
        step = int(model.pruning_step.numpy())
        return {"pruning_ratio": 0.25, "flops_kept": step, "kept/dense": 3.0}

    def importance_histograms(self, model):
        return {"dense": np.arange(4.0)}


def _pruned(controller):
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2)(inputs)
    return PrunedModel(inputs, outputs, controller=controller)


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 3)), rng.normal(size=(8, 2))


def test_update_pruning_calls_hooks_and_counts_steps():
    controller = RecordingController()
    model = _pruned(controller)
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    history = model.fit(
        x, y, batch_size=4, epochs=2, verbose=0, callbacks=[UpdatePruning()]
    )
    assert int(model.pruning_step.numpy()) == 4
    batch_steps = [c[1] for c in controller.calls if c[0] == "batch_begin"]
    assert batch_steps == [0, 1, 2, 3]
    end_steps = [c[1] for c in controller.calls if c[0] == "batch_end"]
    assert end_steps == [0, 1, 2, 3]
    assert controller.calls[0] == ("train_begin",)
    assert [c for c in controller.calls if c[0] == "epoch_end"] == [
        ("epoch_end", 0),
        ("epoch_end", 1),
    ]
    # Headline scalars (no "/") reach the epoch logs; per-layer ones do not.
    assert history.history["pruning_ratio"] == [0.25, 0.25]
    assert history.history["flops_kept"] == [2.0, 4.0]
    assert "kept/dense" not in history.history
    # A second fit continues the step count.
    model.fit(
        x, y, batch_size=4, epochs=1, verbose=0, callbacks=[UpdatePruning()]
    )
    assert int(model.pruning_step.numpy()) == 6


def test_update_pruning_puts_scalars_in_batch_logs():
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(dict(logs))

    model = _pruned(RecordingController())
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[UpdatePruning(), Spy()])
    assert [s["flops_kept"] for s in seen] == [1.0, 2.0]
    assert all(s["pruning_ratio"] == 0.25 for s in seen)


def test_update_pruning_rejects_plain_model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    with pytest.raises(ValueError, match="PrunedModel.*model='plain'"):
        model.fit(x, y, verbose=0, callbacks=[UpdatePruning()])


def test_update_pruning_rejects_missing_controller():
    model = _pruned(None)
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    with pytest.raises(ValueError, match="model.controller=None"):
        model.fit(x, y, verbose=0, callbacks=[UpdatePruning()])


def test_pruning_summaries_writes_events(tmp_path):
    import tensorflow as tf

    model = _pruned(RecordingController())
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[UpdatePruning(), PruningSummaries(tmp_path, update_freq=1)],
    )
    files = glob.glob(os.path.join(tmp_path, "pruning", "events.*"))
    assert len(files) == 1
    tags = {}
    for event in tf.compat.v1.train.summary_iterator(files[0]):
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(event.step)
    assert tags["pruning/flops_kept"] == [1, 2, 2, 3, 4, 4]
    assert "pruning/kept/dense" in tags
    assert tags["importance/dense"] == [2, 4]
    for event in tf.compat.v1.train.summary_iterator(files[0]):
        for value in event.summary.value:
            array = tf.make_ndarray(value.tensor)
            if value.tag == "importance/dense":
                assert value.metadata.plugin_data.plugin_name == "histograms"
                assert array.shape == (30, 3)
                assert array[:, 2].sum() == 4
                np.testing.assert_allclose(array[[0, -1], [0, 1]], [0, 3])
            if value.tag == "pruning/pruning_ratio":
                assert value.metadata.plugin_data.plugin_name == "scalars"
                assert float(array) == 0.25


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"log_dir": ""}, "log_dir=''"),
        ({"log_dir": "x", "update_freq": 0}, "update_freq=0"),
        ({"log_dir": "x", "update_freq": "batch"}, "update_freq='batch'"),
        ({"log_dir": "x", "histogram_freq": -1}, "histogram_freq=-1"),
        ({"log_dir": "x", "bins": 0}, "bins=0"),
    ],
)
def test_pruning_summaries_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PruningSummaries(**kwargs)


def test_pruning_summaries_rejects_plain_model(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    with pytest.raises(ValueError, match="PruningSummaries"):
        model.fit(x, y, verbose=0, callbacks=[PruningSummaries(tmp_path)])
