"""Command line of tflite_bench.

Examples:

```
# CI smoke run (a couple of minutes):
python -m tflite_bench --quick --results-dir results/tflite_bench_quick

# Full built-in suite (MobileNetV2, ResNet50, EfficientNetB0 at 224x224,
# CIFAR ResNet-20; 0/25/50/75% with round_to 1 and 8, uniform and one-shot
# l1 / taylor; 1, 2, 4 threads):
python -m tflite_bench --results-dir results/tflite_bench

# Your own trained model, with accuracy on a dataset:
python -m tflite_bench --models my_model.keras --ratios 0.25 0.5 \\
    --data test.npz --data-limit 1000

# Latency table of a model for prune_structured(target_latency=...):
python -m tflite_bench latency-table --model mobilenetv2 --threads 2 \\
    --output results/latency/mobilenetv2_t2.json

# Also on an Android phone (CPU/XNNPACK and GPU delegate):
python -m tflite_bench --adb --use-gpu \\
    --benchmark-model ./android_aarch64_benchmark_model
```
"""

import argparse
import os

import numpy as np


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tflite_bench",
        description=(
            "Benchmark dense and pruned models (uniform and by criterion) "
            "on the LiteRT interpreter (XNNPACK), report measured speed-up "
            "beside the FLOP reduction."
        ),
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small models, low resolution, few repeats (CI, ~2 minutes)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        help=(
            "suite models (mobilenetv2 resnet50 efficientnetb0 resnet20) "
            "and/or paths to .keras files"
        ),
    )
    p.add_argument("--ratios", nargs="+", type=float)
    p.add_argument("--round-to", nargs="+", type=int, dest="round_tos")
    p.add_argument(
        "--criteria",
        nargs="*",
        help=(
            "criteria (keras_neuronprune.criteria names, e.g. l1 taylor "
            "bn_scale) also benchmarked at every ratio, pruned one-shot; "
            "give the flag without names for uniform pruning only "
            "(default: l1 taylor; --quick: taylor)"
        ),
    )
    p.add_argument("--threads", nargs="+", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--rounds", type=int)
    p.add_argument("--runs-per-round", type=int)
    p.add_argument("--resolution", type=int)
    p.add_argument(
        "--results-dir",
        default=None,
        help="output folder (default results/tflite_bench[_quick])",
    )
    p.add_argument(
        "--data",
        help=(
            "dataset for accuracy: .npz with x_test/y_test (or x/y), or an "
            "image folder with one sub-folder per class"
        ),
    )
    p.add_argument("--data-limit", type=int, default=1000)
    p.add_argument(
        "--retime",
        metavar="RESULTS_JSON",
        help=(
            "re-time the .tflite files listed in an earlier results.json "
            "(no re-export); --models then filters families"
        ),
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (the one-line log per model stays)",
    )
    p.add_argument(
        "--no-host",
        action="store_true",
        help="skip host timing (device only)",
    )
    dev = p.add_argument_group("Android device (adb)")
    dev.add_argument(
        "--adb",
        action="store_true",
        help="also run benchmark_model on an attached device",
    )
    dev.add_argument(
        "--benchmark-model",
        help="local path of the Android benchmark_model binary",
    )
    dev.add_argument("--serial", help="adb device serial")
    dev.add_argument(
        "--use-gpu", action="store_true", help="also use the GPU delegate"
    )
    dev.add_argument("--device-runs", type=int, default=50)
    dev.add_argument("--device-rounds", type=int, default=3)
    return p


def config_from_args(args):
    from tflite_bench.suite import BenchConfig

    if args.quick:
        config = BenchConfig.quick_config()
    else:
        config = BenchConfig()
    if args.results_dir:
        config.results_dir = args.results_dir
    for name in (
        "models",
        "ratios",
        "round_tos",
        "criteria",
        "threads",
        "warmup",
        "rounds",
        "runs_per_round",
        "resolution",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(
                config, name, tuple(value) if isinstance(value, list) else value
            )
    for r in config.ratios:
        if not 0 < r < 1:
            raise ValueError(
                f"--ratios must be in (0, 1). Received: {config.ratios}"
            )
    for rt in config.round_tos:
        if rt < 1:
            raise ValueError(
                f"--round-to must be >= 1. Received: {config.round_tos}"
            )
    from tflite_bench.variants import check_criteria

    config.criteria = check_criteria(config.criteria)
    if args.data:
        config.data = load_dataset(
            args.data, args.data_limit, resolution=config.resolution
        )
    if args.no_host:
        config.host = False
    if args.quiet:
        config.verbose = 0
    if args.adb:
        from tflite_bench.adb import device_config

        config.device = device_config(
            args.benchmark_model,
            serial=args.serial,
            use_gpu=args.use_gpu,
            threads=config.threads,
            num_runs=args.device_runs,
            rounds=args.device_rounds,
        )
    if not config.host and config.device is None:
        raise ValueError("--no-host needs --adb (nothing to time)")
    return config


def load_dataset(path, limit, resolution=None):
    """(x float32, y int) from an .npz or an image folder."""
    if path.endswith(".npz"):
        data = np.load(path)
        for xk, yk in (("x_test", "y_test"), ("x", "y"), ("x_val", "y_val")):
            if xk in data and yk in data:
                x, y = data[xk][:limit], data[yk][:limit]
                break
        else:
            raise ValueError(
                f"--data .npz needs arrays x_test/y_test or x/y. Received "
                f"keys: {list(data.keys())}"
            )
        x = x.astype(np.float32)
        if x.ndim == 3:
            x = x[..., None]
        return x, np.asarray(y).reshape(-1).astype(np.int64)
    if os.path.isdir(path):
        import keras

        size = (resolution, resolution) if resolution else (32, 32)
        ds = keras.utils.image_dataset_from_directory(
            path, image_size=size, batch_size=256, shuffle=True, seed=0
        )
        xs, ys, n = [], [], 0
        for xb, yb in ds:
            xs.append(np.asarray(xb))
            ys.append(np.asarray(yb))
            n += len(ys[-1])
            if n >= limit:
                break
        return (
            np.concatenate(xs)[:limit].astype(np.float32),
            np.concatenate(ys)[:limit].astype(np.int64),
        )
    raise ValueError(
        f"--data must be an .npz file or an image folder. Received: {path!r}"
    )


# Subcommands: `python -m tflite_bench NAME ...` runs NAME's own parser.
SUBCOMMANDS = {"latency-table": "tflite_bench.latency_table"}


def main(argv=None):
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as e:
        parser.error(str(e))
    from tflite_bench import suite

    if args.retime:
        if not args.models:
            config.models = ()
        paths = suite.retime(args.retime, config)
    else:
        paths = suite.run(config)
    print("results:")
    for kind, path in paths.items():
        print(f"  {kind}: {path}")
    return 0
