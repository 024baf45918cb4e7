"""Every schedule type survives PrunedModel save -> load; tfmot converts."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_neuronprune import prune_structured
from keras_neuronprune import schedules
from keras_neuronprune.sparsity.schedules import ConstantSparsity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@keras.saving.register_keras_serializable(package="knp_tests")
def every_other_step(step):
    """A registered schedule function: found again at load time."""
    return step % 2 == 0, 0.25


def small_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))


SCHEDULES = {
    "one_shot": lambda: schedules.OneShot(step=3),
    "one_shot_fraction": lambda: schedules.OneShot(step=None, fraction=0.5),
    "iterative": lambda: schedules.Iterative(channels_per_step=2, frequency=2),
    "polynomial": lambda: schedules.PolynomialDecay(end_step=10, frequency=2),
    "polynomial_tfmot_grid": lambda: schedules.PolynomialDecay(
        end_step=9, frequency=2, prune_at_end_step=False
    ),
    "constant_sparsity": lambda: ConstantSparsity(0.5, frequency=3),
    "function": lambda: every_other_step,
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_pruned_model_with_each_schedule_saves_and_loads(name, tmp_path):
    pruned = prune_structured(
        small_cnn(), "l1", pruning_ratio=0.5, schedule=SCHEDULES[name]()
    )
    schedule = pruned.controller.schedule
    assert isinstance(schedule, schedules.PruningSchedule)
    path = tmp_path / "m.keras"
    pruned.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.controller.schedule
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    steps = range(12)
    if getattr(schedule, "step", 0) is not None:
        assert [restored(s) for s in steps] == [schedule(s) for s in steps]


def test_unsavable_schedule_refuses_to_save_and_writes_nothing(tmp_path):
    def closure(step):
        return step == 1, 0.5

    pruned = prune_structured(
        small_cnn(), "l1", pruning_ratio=0.5, schedule=closure
    )
    # Accepted (and usable in fit) as before.
    assert pruned.controller.schedule(1) == (True, 0.5)
    path = tmp_path / "m.keras"
    with pytest.raises(ValueError, match="cannot be saved.*closure"):
        pruned.save(path)
    assert not path.exists()
    with pytest.raises(ValueError, match="cannot be saved"):
        schedules.CallableSchedule(lambda step: (False, 0.0)).get_config()
    with pytest.raises(ValueError, match="fn=3"):
        schedules.CallableSchedule(3)


def test_polynomial_prune_at_end_step_flag():
    ours = schedules.PolynomialDecay(final_ratio=0.5, end_step=9, frequency=2)
    grid = schedules.PolynomialDecay(
        final_ratio=0.5, end_step=9, frequency=2, prune_at_end_step=False
    )
    assert ours(9)[0] and not grid(9)[0]
    assert ours(9)[1] == grid(9)[1] == 0.5
    assert [ours(s) for s in range(9)] == [grid(s) for s in range(9)]
    with pytest.raises(ValueError, match="prune_at_end_step=1"):
        schedules.PolynomialDecay(prune_at_end_step=1)


def test_a_user_subclass_of_a_tfmot_schedule_is_refused_by_name():
    # A stand-in with tfmot's module path; tfmot itself is never imported.
    PruningSchedule = type("PruningSchedule", (), {})
    PruningSchedule.__module__ = "tensorflow_model_optimization.fake"
    Custom = type("MySchedule", (PruningSchedule,), {"__call__": None})
    with pytest.raises(ValueError, match="MySchedule has no keras_neuronprune"):
        schedules.get(Custom())


TFMOT_SCRIPT = r"""
import json, os, sys, tempfile
import tensorflow_model_optimization as tfmot
import keras
import numpy as np
sys.path.insert(0, os.getcwd())
import keras_neuronprune as knp
from keras_neuronprune.callbacks import UpdatePruning

keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 3))
x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
x = keras.layers.BatchNormalization(name="bn1")(x)
x = keras.layers.ReLU()(x)
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))
sk = tfmot.sparsity.keras
results = {"keras": keras.__version__}
cases = {
    "poly": sk.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=5,
                               frequency=2),
    "const": sk.ConstantSparsity(0.5, begin_step=1, frequency=3),
}
rng = np.random.default_rng(0)
xs = rng.normal(size=(32, 8, 8, 3)).astype("float32")
ys = rng.integers(0, 3, 32)
for name, tf_schedule in cases.items():
    pruned = knp.prune_structured(model, "l1", pruning_ratio=0.5,
                                  schedule=tf_schedule)
    ours = pruned.controller.schedule
    same = all(
        (bool(tf_schedule(s)[0]), round(float(tf_schedule(s)[1]), 6))
        == (bool(ours(s)[0]), round(float(ours(s)[1]), 6))
        for s in range(12))
    pruned.compile("sgd", "sparse_categorical_crossentropy")
    pruned.fit(xs, ys, batch_size=8, epochs=1, verbose=0,
               callbacks=[UpdatePruning()])
    path = os.path.join(tempfile.mkdtemp(), name + ".keras")
    pruned.save(path)
    loaded = keras.models.load_model(path)
    results[name] = {
        "type": type(ours).__module__ + "." + type(ours).__name__,
        "same_outputs": same,
        "loaded_type": type(loaded.controller.schedule).__name__,
        "same_predictions": bool(np.allclose(
            pruned.predict(xs[:4], verbose=0),
            loaded.predict(xs[:4], verbose=0))),
    }
json.dump(results, open(sys.argv[1], "w"))
"""


def test_tfmot_schedules_convert_train_save_and_load(tmp_path):
    # tfmot is imported in a subprocess only: importing it in the test
    # process could switch the Keras that later tests see.
    if importlib.util.find_spec("tensorflow_model_optimization") is None:
        pytest.skip("tensorflow-model-optimization is not installed")
    out = tmp_path / "tfmot.json"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", TFMOT_SCRIPT, str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "tf_keras" in proc.stderr[-2000:]:
        pytest.skip("this tfmot needs tf_keras, which is not installed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["keras"].startswith("3.")
    assert results["poly"]["type"].endswith(
        "schedules.polynomial_decay.PolynomialDecay"
    )
    assert results["const"]["type"].endswith("ConstantSparsity")
    for name in ("poly", "const"):
        assert results[name]["same_outputs"], name
        assert results[name]["same_predictions"], name
    np.testing.assert_equal(results["poly"]["loaded_type"], "PolynomialDecay")
