"""Training helpers and the dense-checkpoint cache of the quality benchmark."""

import functools
import hashlib
import json
import os
import time

import numpy as np


def config_hash(config):
    """A stable 16-hex-digit hash of a JSON-serialisable dict."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The parts of the library a pruning run depends on: a change there makes
# finished runs stale (the dense cache does not depend on them).
_LIBRARY_PARTS = (
    "callbacks",
    "core",
    "cost",
    "criteria",
    "graph",
    "layers",
    "pruning",
    "regularizers",
    "rewrite",
    "schedules",
)


@functools.lru_cache(maxsize=1)
def library_hash():
    """Hash of the library's pruning source (`*.py` of `_LIBRARY_PARTS`).

    Computed once per process, right after the library is imported, so it
    describes the code that runs even while the tree is being edited.
    """
    import keras_neuronprune

    root = os.path.dirname(os.path.abspath(keras_neuronprune.__file__))
    h = hashlib.sha256()
    for part in _LIBRARY_PARTS:
        for folder, dirs, files in sorted(os.walk(os.path.join(root, part))):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    h.update(os.path.relpath(path, root).encode())
                    with open(path, "rb") as f:
                        h.update(f.read())
    return h.hexdigest()[:16]


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def batches(x, y, batch_size, seed, augment=True):
    """A Keras `PyDataset` of shuffled (and augmented) batches.

    Random crop (pad 4, reflect) and horizontal flip, as in the RNI and
    Network Slimming CIFAR code; the order and the augmentation draw from a
    generator seeded with `seed`, so every method sees the same batches.
    """
    from benchmarks._examples import load_example

    loaders = load_example("prune_cifar10_rni")
    return loaders.AugmentedBatches(
        x, y, batch_size, seed=seed, augment=augment
    ).sequence


def compile_model(model, learning_rate, total_steps, weight_decay):
    """SGD (momentum 0.9, Nesterov) with cosine decay over `total_steps`."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, max(1, int(total_steps))
    )
    model.compile(
        optimizer=keras.optimizers.SGD(
            schedule,
            momentum=0.9,
            nesterov=True,
            weight_decay=weight_decay or None,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def accuracy(model, x, y, batch_size=500):
    """Top-1 accuracy in inference mode (works inside `fit` callbacks)."""
    import keras

    correct = 0
    for i in range(0, len(x), batch_size):
        logits = keras.ops.convert_to_numpy(
            model(x[i : i + batch_size], training=False)
        )
        correct += int(np.sum(np.argmax(logits, -1) == y[i : i + batch_size]))
    return correct / max(1, len(x))


class Timer:
    """Wall and process CPU seconds of a block (`with Timer() as t:`)."""

    def __enter__(self):
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        return False


def weight_shapes(model):
    return [list(w.shape) for w in model.weights]


def load_or_train_dense(config, build, train, cache_dir):
    """The dense checkpoint of `config`: loaded from the cache or trained.

    Args:
        config: JSON-serialisable dict of everything that defines the dense
            model (model, data fingerprint, epochs, optimiser, seed...).
        build: `build() -> model`, a fresh untrained model.
        train: `train(model) -> dict` trains in place, returns measurements
            (accuracy, seconds) kept in the cache's metadata.
        cache_dir: folder of `dense-<hash>.keras` and `dense-<hash>.json`.

    Returns:
        `(model, meta)`; `meta["cache"]` is "hit", "trained" or
        "rebuilt: <why>" (the cached file was corrupted or did not match).
    """
    import keras

    key = config_hash(config)
    os.makedirs(cache_dir, exist_ok=True)
    model_path = os.path.join(cache_dir, f"dense-{key}.keras")
    meta_path = os.path.join(cache_dir, f"dense-{key}.json")
    fresh = build()
    reason = None
    if os.path.exists(model_path) or os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            if meta.get("config_hash") != key:
                raise ValueError("config hash differs")
            if file_sha256(model_path) != meta.get("sha256"):
                raise ValueError("file hash differs")
            model = keras.models.load_model(model_path, compile=False)
            if weight_shapes(model) != weight_shapes(fresh):
                raise ValueError("weight shapes differ")
            meta["cache"] = "hit"
            return model, meta
        except Exception as error:  # noqa: BLE001 - any failure rebuilds
            reason = f"{type(error).__name__}: {error}"[:200]
    measured = train(fresh)
    tmp = model_path + ".tmp.keras"
    fresh.save(tmp)
    os.replace(tmp, model_path)
    meta = {
        "config": config,
        "config_hash": key,
        "sha256": file_sha256(model_path),
        "path": model_path,
        **measured,
    }
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1, default=str)
    os.replace(meta_path + ".tmp", meta_path)
    meta["cache"] = "trained" if reason is None else f"rebuilt: {reason}"
    return fresh, meta
