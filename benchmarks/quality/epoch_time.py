"""Seconds per training epoch of the benchmark's models, to size a run.

  python -m benchmarks.quality.epoch_time --dataset cifar10 \\
      --models vgg16,resnet20 --train-subset 10000 --batch-size 128

Trains each dense model `--epochs` epochs (default 2) with the benchmark's
optimiser and batches and prints, per model, the first epoch (with the
graph tracing) and the mean of the others, plus the data loading time.
"""

import argparse
import sys
import time

from benchmarks.quality import data as data_lib


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality.epoch_time"
    )
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", default=data_lib.DEFAULT_DATA_DIR)
    parser.add_argument("--models", default="vgg16,resnet20")
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        data_lib.dataset_path(args.dataset, args.data_dir)
    except data_lib.DataMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from benchmarks.quality.cli import _quiet_fd2

    with _quiet_fd2():
        import keras
    from benchmarks.quality import models as models_lib
    from benchmarks.quality import training

    start = time.perf_counter()
    x, y, xt, yt = data_lib.load_dataset(
        args.dataset, args.data_dir, args.train_subset
    )
    x, xt = data_lib.normalise(x, xt)
    print(
        f"data: {len(x)} train / {len(xt)} test images, loaded in "
        f"{time.perf_counter() - start:.1f}s",
        flush=True,
    )

    class Times(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t)

    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        model = models_lib.build_model(name, x.shape[1:], 10, args.width)
        steps = -(-len(x) // args.batch_size)
        training.compile_model(model, 0.1, args.epochs * steps, 5e-4)
        times = Times()
        times.times = []
        model.fit(
            training.batches(x, y, args.batch_size, 0),
            epochs=args.epochs,
            verbose=0,
            callbacks=[times],
        )
        t = time.perf_counter()
        acc = training.accuracy(model, xt, yt)
        evaluation = time.perf_counter() - t
        rest = times.times[1:] or times.times
        print(
            f"{name}: {model.count_params():,} params; epoch 1 "
            f"{times.times[0]:.1f}s, later epochs {sum(rest) / len(rest):.1f}s "
            f"({len(x)} images, batch {args.batch_size}); test pass "
            f"{evaluation:.1f}s ({len(xt)} images); acc {acc:.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
