"""Prunes under a distribution engine and on one device; run as a script.

`python dist_driver.py mirrored OUT.json` (TensorFlow, MirroredStrategy over
2 logical CPUs) or `python dist_driver.py data_parallel OUT.json` (JAX,
keras.distribution.DataParallel over 2 host devices; set XLA_FLAGS and
KERAS_BACKEND=jax). Writes, per criterion: whether the masks, importances
and pruning step are identical on every replica, and the largest
difference between the stripped distributed and single-device models.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
sys.path.insert(0, os.path.abspath(ROOT))

import numpy as np  # noqa: E402

CRITERIA = ("l1", "taylor")
LOSS = "sparse_categorical_crossentropy"


def small_cnn(keras):
    # Synchronised BN (MirroredStrategy) computes the batch statistics of
    # the global batch, as one device does; elsewhere it is plain BN.
    sync = keras.backend.backend() == "tensorflow"
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1", synchronized=sync)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2", synchronized=sync)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    return x, rng.integers(0, 4, 64).astype("int32")


def flow(keras, criterion):
    import keras_neuronprune as knp
    from keras_neuronprune.callbacks import UpdatePruning
    from keras_neuronprune.schedules import OneShot

    x, y = data()
    pruned = knp.prune_structured(
        small_cnn(keras),
        criterion=criterion,
        pruning_ratio=0.5,
        schedule=OneShot(step=2),
        data=[(x[:32], y[:32])],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    pruned.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    pruned.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    return pruned


def state_variables(model):
    """Masks (masked layers and gates), importances and the pruning step."""
    chosen = []
    for v in model.variables:
        path = v.path
        if (
            "mask" in path
            or "gate" in path
            or "importance" in path
            or "pruning_step" in path
            or "score_count" in path
        ):
            chosen.append(v)
    return chosen


def stripped_outputs(keras, pruned):
    import keras_neuronprune as knp

    final = knp.strip_pruning(pruned)
    x, _ = data()
    out = np.asarray(keras.ops.convert_to_numpy(final(x[:8], training=False)))
    kept = pruned.controller.kept_counts(pruned)
    return out, {k: int(v) for k, v in kept.items()}


def mirrored(out_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    results = {"replicas": None, "criteria": {}}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results["replicas"] = strategy.num_replicas_in_sync
    for criterion in CRITERIA:
        with strategy.scope():
            pruned = flow(keras, criterion)
        identical, checked = True, 0
        for v in state_variables(pruned):
            per_replica = getattr(v.value, "values", None)
            if per_replica is None:
                continue
            checked += 1
            first = per_replica[0].numpy()
            identical &= all(
                np.array_equal(first, r.numpy()) for r in per_replica[1:]
            )
        dist_out, dist_kept = stripped_outputs(keras, pruned)
        single = flow(keras, criterion)
        single_out, single_kept = stripped_outputs(keras, single)
        results["criteria"][criterion] = {
            "replica_copies_checked": checked,
            "identical_across_replicas": bool(identical),
            "same_kept_counts": dist_kept == single_kept,
            "max_abs_diff": float(np.abs(dist_out - single_out).max()),
            "pruning_step": int(pruned.pruning_step.numpy()),
        }
    json.dump(results, open(out_path, "w"))


def data_parallel(out_path):
    import jax
    import keras

    devices = jax.devices()
    results = {"replicas": len(devices), "criteria": {}}
    for criterion in CRITERIA:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        pruned = flow(keras, criterion)
        identical, checked = True, 0
        for v in state_variables(pruned):
            shards = v.value.addressable_shards
            if len(shards) < 2:
                continue
            checked += 1
            first = np.asarray(shards[0].data)
            identical &= all(
                np.array_equal(first, np.asarray(s.data)) for s in shards[1:]
            )
        dist_out, dist_kept = stripped_outputs(keras, pruned)
        keras.distribution.set_distribution(None)
        single = flow(keras, criterion)
        single_out, single_kept = stripped_outputs(keras, single)
        results["criteria"][criterion] = {
            "replica_copies_checked": checked,
            "identical_across_replicas": bool(identical),
            "same_kept_counts": dist_kept == single_kept,
            "max_abs_diff": float(np.abs(dist_out - single_out).max()),
            "pruning_step": int(
                keras.ops.convert_to_numpy(pruned.pruning_step)
            ),
        }
    json.dump(results, open(out_path, "w"))


if __name__ == "__main__":
    {"mirrored": mirrored, "data_parallel": data_parallel}[sys.argv[1]](
        sys.argv[2]
    )
