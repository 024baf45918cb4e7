"""Export and PruningSummaries on the JAX and PyTorch backends (#12).

Export needs TensorFlow graphs: on another backend it is refused up front
with the fix in the message. PruningSummaries writes TensorBoard files from
NumPy values, so it works on JAX and PyTorch as well.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

_DRIVER = r"""
import glob, json, sys
import keras, numpy as np
import keras_neuronprune as knp

out = {}
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                          keras.layers.Dense(2)])
for name, call in (("tflite", knp.export.tflite), ("onnx", knp.export.onnx)):
    try:
        call(model, sys.argv[1] + "/m." + name)
        out[name] = "exported"
    except ValueError as e:
        out[name] = str(e)
pruned = knp.prune_structured(model, criterion="l1", pruning_ratio=0.5,
                              schedule=knp.schedules.OneShot(step=1))
pruned.compile(optimizer="sgd", loss="mse")
x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
y = np.zeros((8, 2), "float32")
pruned.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[
    knp.callbacks.UpdatePruning(),
    knp.callbacks.PruningSummaries(log_dir=sys.argv[1] + "/logs")])
out["events"] = len(glob.glob(sys.argv[1] + "/logs/**/events*",
                              recursive=True))
out["backend"] = keras.backend.backend()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_export_refused_and_summaries_written(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT") :])
    assert out["backend"] == backend
    for name in ("tflite", "onnx"):
        assert f"`export.{name}` needs the TensorFlow backend" in out[name]
        assert (
            f"'{backend}'" in out[name]
            and "KERAS_BACKEND=tensorflow" in out[name]
        )
    assert not (tmp_path / "m.tflite").exists()
    assert out["events"] >= 1
