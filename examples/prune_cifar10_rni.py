"""Prune a ResNet-20 on CIFAR-10 with RNI, fine-tune, strip, export.

The training-time structured-pruning flow of keras_neuronprune on real
data: train (or load) a CIFAR ResNet, wrap it with
`keras_neuronprune.prune_structured(criterion="rni")` (BatchNormalization
scales bounded by a sigmoid plus the receding regulariser), train with the
regulariser, prune once with a global threshold, fine-tune, strip to a
physically thinner plain Keras model, and report accuracy, parameters and
FLOPs before and after (optionally exporting a `.tflite`).

Data (`--data`):
  tfds                    CIFAR-10 from a local tensorflow-datasets copy
                          (--tfds-data-dir; never downloads)
  path/to/folder          an image folder: train/<class>/*.jpg and
                          test/<class>/*.jpg, classes in alphabetical order
  path/to/images.tar      the same layout inside a tar (read in place)
  path/to/data.npz        arrays x_train, y_train, x_test, y_test
Without `--data`, or with `--smoke`, small generated images are used.

Examples:
  python examples/prune_cifar10_rni.py --smoke
  python examples/prune_cifar10_rni.py \\
      --data ../shared/data/cifar10-jpeg/cifar10-jpeg.tar --limit 1000 \\
      --epochs 10 --regularize-epochs 5 --finetune-epochs 10 --tflite
"""

import argparse
import glob
import io
import json
import os
import sys
import tarfile
import time

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


# ----------------------------------------------------------------------
# Data.
def load_npz(path):
    """`(x_train, y_train, x_test, y_test)` from an `.npz` file."""
    with np.load(path) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data)
        if missing:
            raise ValueError(
                f"{path} lacks the arrays {sorted(missing)} (expected "
                "x_train, y_train, x_test, y_test)"
            )
        arrays = [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    return _standardise(*arrays)


def _decode(data):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _split_entries(entries, limit):
    """Groups `(split, class, name, payload)` into arrays, sorted classes."""
    splits = {}
    classes = sorted({c for _, c, _, _ in entries})
    index = {c: i for i, c in enumerate(classes)}
    for split, cls, name, payload in sorted(entries, key=lambda e: e[:3]):
        per_class = splits.setdefault(split, {}).setdefault(cls, [])
        if limit is None or len(per_class) < limit:
            per_class.append(payload)
    out = []
    for split in ("train", "test"):
        if split not in splits:
            raise ValueError(f"no '{split}/' images found")
        xs, ys = [], []
        for cls, payloads in sorted(splits[split].items()):
            for payload in payloads:
                xs.append(payload() if callable(payload) else payload)
                ys.append(index[cls])
        out += [np.stack(xs), np.asarray(ys, "int64")]
    return out, classes


def load_image_folder(path, limit_per_class=None):
    """Images from `path/{train,test}/<class>/*` (JPEG or PNG).

    Returns:
        `((x_train, y_train, x_test, y_test), classes)`.
    """
    entries = []
    for split in ("train", "test"):
        root = os.path.join(path, split)
        if not os.path.isdir(root):
            continue
        for cls in sorted(os.listdir(root)):
            folder = os.path.join(root, cls)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                if name.lower().endswith(IMAGE_SUFFIXES):
                    file = os.path.join(folder, name)
                    entries.append(
                        (split, cls, name, lambda f=file: _read_file(f))
                    )
    arrays, classes = _split_entries(entries, limit_per_class)
    return _standardise(*arrays), classes


def _read_file(path):
    with open(path, "rb") as f:
        return _decode(f.read())


def load_image_tar(path, limit_per_class=None):
    """Like `load_image_folder`, reading a tar archive in place."""
    entries = []
    with tarfile.open(path) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        for member in members:
            parts = member.name.strip("./").split("/")
            if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            split, cls, name = parts[-3], parts[-2], parts[-1]
            if split in ("train", "test"):
                entries.append((split, cls, name, member))
        # Decode only the images that the per-class limit keeps.
        kept, classes = _split_entries(
            [
                (s, c, n, (lambda m=m: _decode(archive.extractfile(m).read())))
                for s, c, n, m in entries
            ],
            limit_per_class,
        )
    return _standardise(*kept), classes


def tfds_data_dir(data_dir=None):
    """The tensorflow-datasets folder: argument, $TFDS_DATA_DIR or default."""
    return os.path.expanduser(
        data_dir
        or os.environ.get("TFDS_DATA_DIR")
        or os.path.join("~", "tensorflow_datasets")
    )


def _prepared_tfds_copy(data_dir, name="cifar10"):
    # A prepared tfds data set is <data_dir>/<name>/<version>/ with its
    # dataset_info.json; looking for it needs neither tfds nor the network.
    pattern = os.path.join(data_dir, name, "*", "dataset_info.json")
    return sorted(glob.glob(pattern))


def check_tfds_available(data_dir=None):
    """Raises ValueError (one line) without a prepared local CIFAR-10 copy."""
    data_dir = tfds_data_dir(data_dir)
    if not _prepared_tfds_copy(data_dir):
        raise ValueError(
            "`--data tfds`: CIFAR-10 is not available offline (no prepared "
            f"tensorflow-datasets copy under {data_dir}); point at a local "
            "copy with `--tfds-data-dir DIR` (or $TFDS_DATA_DIR), or pass an "
            "image folder, a .tar or an .npz with `--data PATH`."
        )
    return data_dir


def load_tfds(limit=None, data_dir=None):
    """CIFAR-10 from a local tensorflow-datasets copy (offline only).

    Never downloads: without a prepared copy under the data folder it fails
    at once, creating nothing, with one line saying where to point.
    """
    data_dir = check_tfds_available(data_dir)
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ValueError(
            "`--data tfds` needs the tensorflow-datasets package "
            f"(pip install tensorflow-datasets; import failed: {error}); or "
            "pass an image folder, a .tar or an .npz path."
        ) from None
    arrays = []
    for split in ("train", "test"):
        x, y = tfds.as_numpy(
            tfds.load(
                "cifar10",
                split=split,
                as_supervised=True,
                batch_size=-1,
                data_dir=data_dir,
                download=False,
                try_gcs=False,
            )
        )
        if limit is not None:
            x, y = x[: limit * 10], y[: limit * 10]
        arrays += [x, y]
    return _standardise(*arrays)


def synthetic_data(n_train=512, n_test=128, classes=10, size=32, seed=0):
    """Generated images whose class sets a colour and a stripe pattern."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 1, (classes, 3))
    freq = np.arange(classes) % 4 + 1
    grid = np.linspace(0, 2 * np.pi, size)

    def make(n):
        y = rng.integers(0, classes, n)
        stripes = np.sin(freq[y, None] * grid[None, :])[:, :, None, None]
        x = 0.5 * colours[y][:, None, None, :] + 0.25 * stripes
        x = x + rng.normal(0, 0.1, (n, size, size, 3))
        return np.clip(x, 0, 1).astype("float32"), y.astype("int64")

    return (*make(n_train), *make(n_test))


def _standardise(x_train, y_train, x_test, y_test):
    def images(x):
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[..., None]
        if x.dtype == np.uint8 or x.max() > 1.5:
            x = x.astype("float32") / 255.0
        return x.astype("float32")

    return (
        images(x_train),
        np.asarray(y_train).reshape(-1).astype("int64"),
        images(x_test),
        np.asarray(y_test).reshape(-1).astype("int64"),
    )


def load_data(spec, limit_per_class=None, tfds_data_dir=None):
    """Dispatches `--data`: "tfds", a folder, a `.tar` or an `.npz`."""
    if spec == "tfds":
        return load_tfds(limit_per_class, tfds_data_dir)
    if not os.path.exists(spec):
        raise ValueError(f"`--data` path does not exist. Received: {spec!r}")
    if os.path.isdir(spec):
        return load_image_folder(spec, limit_per_class)[0]
    if spec.endswith(".npz"):
        data = load_npz(spec)
        if limit_per_class is not None:
            data = _limit(data, limit_per_class)
        return data
    if tarfile.is_tarfile(spec):
        return load_image_tar(spec, limit_per_class)[0]
    raise ValueError(
        "`--data` must be 'tfds', an image folder, a .tar or an .npz. "
        f"Received: {spec!r}"
    )


def _limit(data, per_class):
    out = []
    for x, y in ((data[0], data[1]), (data[2], data[3])):
        idx = np.concatenate(
            [np.nonzero(y == c)[0][:per_class] for c in np.unique(y)]
        )
        idx.sort()
        out += [x[idx], y[idx]]
    return tuple(out)


class AugmentedBatches:
    """Random crop (pad 4) and horizontal flip, as in the RNI paper."""

    def __init__(self, x, y, batch_size, seed=0, augment=True):
        import keras

        class _Sequence(keras.utils.PyDataset):
            def __len__(inner):
                return int(np.ceil(len(x) / batch_size))

            def __getitem__(inner, i):
                sl = self.order[i * batch_size : (i + 1) * batch_size]
                xb, yb = x[sl], y[sl]
                if augment:
                    xb = self._augment(xb)
                return xb, yb

            def on_epoch_end(inner):
                self.order = self.rng.permutation(len(x))

        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))
        self.sequence = _Sequence()

    def _augment(self, xb):
        n, h, w, _ = xb.shape
        padded = np.pad(xb, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
        dy, dx = self.rng.integers(0, 9, (2, n))
        out = np.stack(
            [padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)]
        )
        flip = self.rng.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
        return out


# ----------------------------------------------------------------------
# Model.
def build_resnet(depth=20, width=16, classes=10, input_shape=(32, 32, 3)):
    """CIFAR ResNet (He et al. 2016): 3 stages of (depth - 2) / 6 blocks.

    Shortcuts that change shape use a 1x1 convolution (option B), so every
    channel group (residual streams included) can be pruned.
    """
    import keras

    if (depth - 2) % 6:
        raise ValueError(f"`depth` must be 6n + 2. Received: depth={depth}")
    blocks = (depth - 2) // 6
    # PyTorch's BatchNorm defaults, as in the RNI code (momentum 0.1 there).
    bn = {"momentum": 0.9, "epsilon": 1e-5}
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(
        width, 3, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = keras.layers.BatchNormalization(**bn, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            name = f"s{stage}b{block}"
            stride = 2 if stage > 0 and block == 0 else 1
            y = keras.layers.Conv2D(
                filters,
                3,
                stride,
                padding="same",
                use_bias=False,
                name=f"{name}_conv1",
            )(x)
            y = keras.layers.BatchNormalization(**bn, name=f"{name}_bn1")(y)
            y = keras.layers.ReLU(name=f"{name}_relu1")(y)
            y = keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"{name}_conv2"
            )(y)
            y = keras.layers.BatchNormalization(**bn, name=f"{name}_bn2")(y)
            if stride != 1 or x.shape[-1] != filters:
                x = keras.layers.Conv2D(
                    filters, 1, stride, use_bias=False, name=f"{name}_short"
                )(x)
                x = keras.layers.BatchNormalization(
                    **bn, name=f"{name}_short_bn"
                )(x)
            x = keras.layers.Add(name=f"{name}_add")([x, y])
            x = keras.layers.ReLU(name=f"{name}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


# ----------------------------------------------------------------------
# Flow.
def _compile(model, lr, steps):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(lr, max(1, steps))
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _accuracy(model, x, y, batch_size=500):
    import keras

    correct = 0
    for i in range(0, len(x), batch_size):
        logits = keras.ops.convert_to_numpy(
            model(x[i : i + batch_size], training=False)
        )
        correct += int(np.sum(np.argmax(logits, -1) == y[i : i + batch_size]))
    return correct / len(x)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--data", default=None, help="see above")
    parser.add_argument(
        "--limit", type=int, default=None, help="images per class and split"
    )
    parser.add_argument(
        "--baseline", default=None, help="a trained .keras model to start from"
    )
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--regularize-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--rni-strength", type=float, default=1e-4)
    parser.add_argument("--rni-shift", type=float, default=3.0)
    parser.add_argument("--output-dir", default="prune_cifar10_rni_out")
    parser.add_argument(
        "--tflite", action="store_true", help="also export model.tflite"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tfds-data-dir",
        default=None,
        help="local tensorflow-datasets folder for --data tfds "
        "(default: $TFDS_DATA_DIR or ~/tensorflow_datasets); never downloads",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run on generated data",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.depth, args.width = 8, 4
        args.epochs, args.regularize_epochs, args.finetune_epochs = 1, 1, 1
        args.batch_size = 64
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.data == "tfds" and not args.smoke:
        # Before importing Keras: a missing offline copy fails in a second.
        check_tfds_available(args.tfds_data_dir)
    import keras

    from keras_neuronprune.callbacks import UpdatePruning
    from keras_neuronprune.cost import count_cost
    from keras_neuronprune.criteria.rni import RNI
    from keras_neuronprune.pruning import prune_structured
    from keras_neuronprune.pruning import strip_pruning
    from keras_neuronprune.schedules import OneShot

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    if args.smoke or args.data is None:
        data = synthetic_data(
            256 if args.smoke else 5000,
            64 if args.smoke else 1000,
            seed=args.seed,
        )
        source = "generated images"
    else:
        data = load_data(args.data, args.limit, args.tfds_data_dir)
        source = args.data
    x_train, y_train, x_test, y_test = data
    print(
        f"data: {source}: {len(x_train)} train / {len(x_test)} test "
        f"images of shape {x_train.shape[1:]}",
        flush=True,
    )
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2)) + 1e-6
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std
    classes = int(max(y_train.max(), y_test.max()) + 1)
    batches = AugmentedBatches(
        x_train, y_train, args.batch_size, seed=args.seed
    ).sequence
    steps = len(batches)
    verbose = 0 if args.smoke else 2

    if args.baseline:
        model = keras.models.load_model(args.baseline)
    else:
        model = build_resnet(args.depth, args.width, classes, x_train.shape[1:])
        _compile(model, args.lr, args.epochs * steps)
        model.fit(batches, epochs=args.epochs, verbose=verbose)
    base_acc = _accuracy(model, x_test, y_test)
    print(f"baseline accuracy {base_acc:.4f}", flush=True)

    pruned = prune_structured(
        model,
        criterion=RNI(strength=args.rni_strength, shift=args.rni_shift),
        pruning_ratio=args.ratio,
        schedule=OneShot(step=args.regularize_epochs * steps),
    )
    total = args.regularize_epochs + args.finetune_epochs
    _compile(pruned, args.lr / 10, total * steps)
    pruned.fit(
        batches, epochs=total, verbose=verbose, callbacks=[UpdatePruning()]
    )
    final = strip_pruning(pruned)
    final_acc = _accuracy(final, x_test, y_test)

    os.makedirs(args.output_dir, exist_ok=True)
    model_path = os.path.join(args.output_dir, "pruned.keras")
    final.save(model_path)
    base_cost, final_cost = count_cost(model), count_cost(final)
    result = {
        "data": source,
        "base_accuracy": base_acc,
        "final_accuracy": final_acc,
        "base_params": base_cost.params,
        "final_params": final_cost.params,
        "base_flops": base_cost.flops,
        "final_flops": final_cost.flops,
        "kept_channels": pruned.controller.kept_counts(pruned),
        "model": model_path,
    }
    if args.tflite:
        import tensorflow as tf

        path = os.path.join(args.output_dir, "pruned.tflite")
        with open(path, "wb") as f:
            f.write(tf.lite.TFLiteConverter.from_keras_model(final).convert())
        result["tflite"] = path
    result["seconds"] = time.perf_counter() - start
    with open(os.path.join(args.output_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"accuracy {base_acc:.4f} -> {final_acc:.4f}; params "
        f"{base_cost.params:,} -> {final_cost.params:,} "
        f"(x{final_cost.params / base_cost.params:.2f}); FLOPs "
        f"{base_cost.flops:,} -> {final_cost.flops:,} "
        f"(x{final_cost.flops / base_cost.flops:.2f}); "
        f"{result['seconds']:.0f}s",
        flush=True,
    )
    return result


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:
        # Bad input (a missing data set, a wrong path): one line, no trace.
        sys.exit(f"error: {error}")
