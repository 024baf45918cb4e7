"""Datasets of the quality benchmark (real ones from `--data-dir`).

No Keras / TensorFlow import here: a missing data path is reported before
TensorFlow starts.
"""

import hashlib
import os
import tarfile

import numpy as np

# Relative to the repository root: ../shared/data.
DEFAULT_DATA_DIR = os.path.normpath(
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        os.pardir,
        os.pardir,
        os.pardir,
        "shared",
        "data",
    )
)

DATASETS = {
    # name: (candidate paths under --data-dir, how to get it)
    "fashion-mnist": (
        ("fashion-mnist/fashion_mnist.npz",),
        "the Fashion-MNIST npz (keys x_train, y_train, x_test, y_test, as "
        "keras.datasets.fashion_mnist.load_data() returns; see "
        "github.com/zalandoresearch/fashion-mnist)",
    ),
    "cifar10": (
        ("cifar10-jpeg/cifar10-jpeg.tar", "cifar10-jpeg"),
        "CIFAR-10 as an image-folder tar or folder "
        "(train/<class>/*.jpg, test/<class>/*.jpg; see "
        "www.cs.toronto.edu/~kriz/cifar.html)",
    ),
}


class DataMissingError(Exception):
    """A dataset file is not where `--data-dir` says (one-line message)."""


def dataset_path(name, data_dir):
    """The existing file or folder of dataset `name` under `data_dir`.

    Raises:
        DataMissingError: nothing there, with a one-line message naming the
            path looked at and how to get the data.
    """
    if name not in DATASETS:
        raise ValueError(
            f"`--dataset` must be one of {sorted(DATASETS)}. "
            f"Received: dataset={name!r}"
        )
    candidates, how = DATASETS[name]
    for rel in candidates:
        path = os.path.join(data_dir, rel)
        if rel.endswith((".npz", ".tar")) and os.path.isfile(path):
            return path
        if not rel.endswith((".npz", ".tar")) and os.path.isdir(
            os.path.join(path, "train")
        ):
            return path
    raise DataMissingError(
        f"dataset {name!r} not found: expected "
        f"{os.path.join(data_dir, candidates[0])} "
        f"(pass --data-dir DIR holding {candidates[0]}; it is {how})"
    )


def load_dataset(name, data_dir, train_subset=None, test_subset=None):
    """`(x_train, y_train, x_test, y_test)`, float32 images in [0, 1].

    `train_subset` / `test_subset` keep that many images, drawn with a fixed
    generator (seed 0, class-balanced), so every seed and method of a run
    sees the same images.
    """
    from benchmarks._examples import load_example

    loaders = load_example("prune_cifar10_rni")
    path = dataset_path(name, data_dir)
    if path.endswith(".npz"):
        data = loaders.load_npz(path)
    elif os.path.isdir(path):
        data = loaders.load_image_folder(path)[0]
    elif tarfile.is_tarfile(path):
        data = loaders.load_image_tar(path)[0]
    else:
        raise DataMissingError(f"{path} is neither an .npz nor a tar archive")
    x_train, y_train, x_test, y_test = data
    x_train, y_train = _subset(x_train, y_train, train_subset)
    x_test, y_test = _subset(x_test, y_test, test_subset)
    return x_train, y_train, x_test, y_test


def _subset(x, y, n):
    if n is None or n >= len(x):
        return x, y
    rng = np.random.default_rng(0)
    classes = np.unique(y)
    per = int(np.ceil(n / len(classes)))
    idx = np.concatenate(
        [rng.permutation(np.nonzero(y == c)[0])[:per] for c in classes]
    )
    idx = np.sort(rng.permutation(idx)[:n])
    return x[idx], y[idx]


def quick_dataset(seed=0):
    """Small generated images (a few seconds of training)."""
    from benchmarks._examples import load_example

    loaders = load_example("prune_cifar10_rni")
    return loaders.synthetic_data(256, 128, classes=10, size=16, seed=seed)


def normalise(x_train, x_test):
    """Per-channel standardisation with the training statistics."""
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2)) + 1e-6
    return (
        ((x_train - mean) / std).astype("float32"),
        ((x_test - mean) / std).astype("float32"),
    )


def fingerprint(x_train, y_train, x_test, y_test):
    """A short hash of the data (shapes, labels, a slice of the pixels)."""
    h = hashlib.sha256()
    for a in (x_train, y_train, x_test, y_test):
        h.update(str(a.shape).encode())
    h.update(np.ascontiguousarray(y_train).tobytes())
    h.update(np.ascontiguousarray(y_test).tobytes())
    h.update(np.ascontiguousarray(x_train[:64]).tobytes())
    return h.hexdigest()[:16]
