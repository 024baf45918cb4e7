"""Runs the used-by flow on one Keras backend; run as a script.

`KERAS_BACKEND=jax python tests/backends/flow_driver.py OUT.json crit ...`
prunes a small CNN with every criterion named (prune_structured -> fit with
UpdatePruning -> strip_pruning -> save/load of the pruned and the stripped
model) and writes one JSON record per criterion. Keras fixes its backend at
import, so the tests call this in a subprocess per backend; several
criteria share one process to pay the import once.
"""

import json
import os
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
sys.path.insert(0, os.path.abspath(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

LOSS = "sparse_categorical_crossentropy"


def small_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(12, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, size=(n,)).astype("int32")
    return x, y


def predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def run_flow(criterion, workdir, schedule=None):
    """prune -> fit (UpdatePruning) -> strip -> save/load; returns a dict."""
    import keras_neuronprune as knp
    from keras_neuronprune.callbacks import UpdatePruning
    from keras_neuronprune.schedules import OneShot

    x, y = data()
    start = time.time()
    pruned = knp.prune_structured(
        small_cnn(),
        criterion=criterion,
        pruning_ratio=0.5,
        schedule=schedule or OneShot(step=2),
        data=[(x[:32], y[:32]), (x[32:], y[32:])],
        loss=LOSS,
    )
    # Eager steps: compiling the train step costs more than 4 steps do.
    pruned.compile(
        optimizer=keras.optimizers.SGD(0.01), loss=LOSS, jit_compile=False
    )
    pruned.fit(
        x, y, batch_size=16, epochs=1, verbose=0, callbacks=[UpdatePruning()]
    )
    step = int(keras.ops.convert_to_numpy(pruned.pruning_step))
    final = knp.strip_pruning(pruned)
    probe = x[:8]
    p_pruned = predict(pruned, probe)
    p_final = predict(final, probe)
    path = os.path.join(workdir, f"{criterion}_pruned.keras")
    pruned.save(path)
    loaded = keras.models.load_model(path)
    p_loaded = predict(loaded, probe)
    final_path = os.path.join(workdir, f"{criterion}_final.keras")
    final.save(final_path)
    p_final_loaded = predict(keras.models.load_model(final_path), probe)
    return {
        "ok": True,
        "step": step,
        "params_before": int(small_cnn().count_params()),
        "params_after": int(final.count_params()),
        "stripped_vs_pruned": float(np.abs(p_pruned - p_final).max()),
        "loaded_vs_pruned": float(np.abs(p_pruned - p_loaded).max()),
        "final_loaded_vs_final": float(np.abs(p_final - p_final_loaded).max()),
        "loaded_has_controller": loaded.controller is not None,
        "seconds": round(time.time() - start, 2),
    }


def main(out_path, criteria):
    results = {"backend": keras.backend.backend(), "criteria": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for criterion in criteria:
            try:
                results["criteria"][criterion] = run_flow(criterion, workdir)
            except Exception as error:  # noqa: BLE001 - reported per case
                results["criteria"][criterion] = {
                    "ok": False,
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc()[-3000:],
                }
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
