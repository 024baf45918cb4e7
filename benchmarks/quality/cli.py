"""Command line of the quality benchmark (`python -m benchmarks.quality`).

Examples:
  python -m benchmarks.quality --quick
  python -m benchmarks.quality --dataset cifar10 --models resnet20,vgg16 \\
      --seeds 0,1 --epochs 30 --reg-epochs 5 --finetune-epochs 15 \\
      --train-subset 10000 --results-dir quality_results
  # the papers' budgets, on a GPU:
  python -m benchmarks.quality --dataset cifar10 --models vgg16,resnet56 \\
      --epochs 160 --reg-epochs 20 --finetune-epochs 140 --seeds 0,1,2

Console: one progress line per run (and per dense baseline) unless
--quiet; everything else goes to the files in --results-dir.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

from benchmarks.quality import data as data_lib

QUICK = {
    "models": "vgg-tiny",
    "criteria": "l1,rni,taylor,uniform,scratch",
    "targets": "2x",
    "seeds": "0",
    "epochs": 1,
    "reg_epochs": 1,
    "finetune_epochs": 1,
    "batch_size": 64,
    "width": 2.0,
    "calibration_batches": 1,
}
DEFAULTS = {
    "models": "vgg16,resnet20,resnet56",
    "criteria": "all",
    "targets": "2x,4x,ch90",
    "seeds": "0,1",
    "epochs": 30,
    "reg_epochs": 5,
    "finetune_epochs": 15,
    "batch_size": 128,
    "width": 1.0,
    "calibration_batches": 4,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    add = parser.add_argument
    add("--dataset", default="cifar10", choices=sorted(data_lib.DATASETS))
    add(
        "--data-dir",
        default=data_lib.DEFAULT_DATA_DIR,
        help="folder of the datasets (default: ../shared/data of the repo)",
    )
    add("--models", help=f"comma list (default {DEFAULTS['models']})")
    add(
        "--criteria",
        help="comma list of criterion names, uniform, scratch; 'all' (the "
        "default) = every structured criterion + uniform + scratch",
    )
    add("--targets", help="comma list: <k>x FLOP reduction, ch<pct> channels")
    add("--seeds", help="comma list of ints (default 0,1)")
    add("--epochs", type=int, help="dense epochs (default 30)")
    add("--reg-epochs", type=int, help="regularised epochs E_reg (default 5)")
    add(
        "--finetune-epochs",
        type=int,
        help="fine-tune epochs E_ft after pruning (default 15); methods "
        "without a regulariser fine-tune E_reg + E_ft",
    )
    add("--batch-size", type=int)
    add("--width", type=float, help="channel multiplier of every model")
    add("--lr", type=float, default=0.1, help="dense / scratch learning rate")
    add("--finetune-lr", type=float, default=0.01)
    add("--weight-decay", type=float, default=5e-4)
    add("--train-subset", type=int, help="number of training images")
    add("--test-subset", type=int, help="number of test images (default all)")
    add("--calibration-batches", type=int, help="batches for data criteria")
    add("--no-augment", dest="augment", action="store_false")
    add("--results-dir", default="quality_results")
    add(
        "--quick",
        action="store_true",
        help="generated data, tiny models, 1 epoch each (seconds per run)",
    )
    add("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _ints(text, name):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"`{name}` must be a comma list of integers. Received: {text!r}"
        ) from None


def _list(text):
    return [v.strip() for v in text.split(",") if v.strip()]


@contextlib.contextmanager
def _quiet_fd2():
    """Hides TensorFlow's C++ start-up lines (fd 2) while it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv=None):
    """Runs the benchmark; returns the exit status (0, or 2 on bad input)."""
    args = parse_args(argv)
    try:
        return _main(args)
    except data_lib.DataMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(args):
    start = time.perf_counter()
    models = _list(args.models)
    targets = _list(args.targets)
    seeds = _ints(args.seeds, "--seeds")
    if not args.quick:
        # Fail on a missing dataset before TensorFlow starts.
        data_lib.dataset_path(args.dataset, args.data_dir)
    with _quiet_fd2():
        import keras  # noqa: F401

        import keras_neuronprune as knp
    import warnings

    warnings.filterwarnings("ignore")
    from benchmarks.quality import methods as methods_lib
    from benchmarks.quality import models as models_lib
    from benchmarks.quality import report
    from benchmarks.quality import training

    for name in models:
        models_lib.check_model_name(name)
    parsed_targets = [(t, *methods_lib.parse_target(t)) for t in targets]
    if args.criteria == "all":
        method_names = list(methods_lib.CRITERIA) + list(methods_lib.BASELINES)
    else:
        method_names = _list(args.criteria)
    for name in method_names:
        methods_lib.check_method(name)

    def say(message):
        if not args.quiet:
            print(message, flush=True)

    data, dataset, fingerprint, classes = load_data(args)
    x_train, y_train, x_test, y_test = data
    budget = {
        "epochs": args.epochs,
        "reg_epochs": args.reg_epochs,
        "finetune_epochs": args.finetune_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "finetune_lr": args.finetune_lr,
        "weight_decay": args.weight_decay,
        "augment": args.augment,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "regularised": [
            m
            for m in method_names
            if methods_lib.split_method(m)[0] in methods_lib.REGULARISED
        ],
        "shortcut": models_lib.SHORTCUT,
        "width": args.width,
        "calibration_batches": args.calibration_batches,
    }
    library = training.library_hash()
    runs_dir = os.path.join(args.results_dir, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    rows, histograms = [], {}
    for model_name in models:
        for seed in seeds:
            dense, meta = load_dense(
                args, model_name, seed, data, dataset, fingerprint, classes
            )
            say(
                f"dense     {model_name:<9} seed {seed}  acc "
                f"{meta['accuracy']:.4f}  {meta['wall_s']:7.1f}s  "
                f"(cache: {meta['cache']})"
            )
            base_cost = knp.count_cost(dense)
            ctx = methods_lib.Context(args, dense, meta, data, seed, base_cost)
            for target, kind, value in parsed_targets:
                for method in method_names:
                    run_config = {
                        "dense": meta["config_hash"],
                        "method": method,
                        "target": target,
                        "reg_epochs": args.reg_epochs,
                        "finetune_epochs": args.finetune_epochs,
                        "finetune_lr": args.finetune_lr,
                        "calibration_batches": args.calibration_batches,
                        "test": len(x_test),
                        "library": library,
                    }
                    tag = f"{model_name}_{method}_{target}_s{seed}"
                    row, cached = cached_run(
                        ctx, runs_dir, tag, run_config, method, kind, value,
                        {
                            "dataset": dataset,
                            "model": model_name,
                            "method": method,
                            "target": target,
                            "target_kind": kind,
                            "target_value": value,
                            "seed": seed,
                        },
                    )  # fmt: skip
                    if row.get("histogram"):
                        histograms[tag] = row["histogram"]
                    rows.append(row)
                    acc = row["acc_pruned"]
                    say(
                        f"{method:<9} {model_name:<9} {target:<5} seed {seed}"
                        f"  FLOPs {row['flops_kept']:.3f}  acc "
                        + (f"{acc:.4f}" if acc is not None else "  -   ")
                        + f" -> {row['acc_final']:.4f}  "
                        f"{row['wall_s']:7.1f}s"
                        + ("  (done before, skipped)" if cached else "")
                    )
    public_rows = [
        {k: v for k, v in r.items() if k != "histogram"} for r in rows
    ]
    paths = report.write_all(public_rows, args.results_dir, budget, histograms)
    say(
        f"wrote {len(paths)} files to {args.results_dir} in "
        f"{time.perf_counter() - start:.0f}s"
    )
    return 0


def load_data(args):
    """The benchmark's data: `(data, dataset, fingerprint, classes)`.

    `data` is `(x_train, y_train, x_test, y_test)`, standardised with the
    training statistics; `--quick` generates it.
    """
    if args.quick:
        data = data_lib.quick_dataset()
        dataset = "generated"
    else:
        data = data_lib.load_dataset(
            args.dataset, args.data_dir, args.train_subset, args.test_subset
        )
        dataset = args.dataset
    x_train, y_train, x_test, y_test = data
    x_train, x_test = data_lib.normalise(x_train, x_test)
    data = (x_train, y_train, x_test, y_test)
    classes = int(max(y_train.max(), y_test.max()) + 1)
    return data, dataset, data_lib.fingerprint(*data), classes


def load_dense(args, model_name, seed, data, dataset, fingerprint, classes):
    """The dense checkpoint of one (model, seed): `(model, meta)`.

    Loaded from `<results-dir>/cache` when a checkpoint of the same
    configuration is there, trained (and cached) otherwise; see
    `training.load_or_train_dense`.
    """
    import keras

    import keras_neuronprune as knp
    from benchmarks.quality import models as models_lib
    from benchmarks.quality import training

    x_train, y_train, x_test, y_test = data
    dense_config = {
        "model": model_name,
        "width": args.width,
        "dataset": dataset,
        "data": fingerprint,
        "classes": classes,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "augment": args.augment,
        "seed": seed,
        "keras_neuronprune": knp.__version__,
    }

    def build():
        keras.utils.set_random_seed(seed)
        return models_lib.build_model(
            model_name, x_train.shape[1:], classes, args.width
        )

    def train(model):
        keras.utils.set_random_seed(seed)
        steps = -(-len(x_train) // args.batch_size)
        with training.Timer() as t:
            training.compile_model(
                model, args.lr, args.epochs * steps, args.weight_decay
            )
            if args.epochs:
                model.fit(
                    training.batches(
                        x_train, y_train, args.batch_size, seed, args.augment
                    ),
                    epochs=args.epochs,
                    verbose=0,
                )
        return {
            "accuracy": training.accuracy(model, x_test, y_test),
            "cpu_s": t.cpu,
            "wall_s": t.wall,
            "seconds_per_epoch": t.wall / max(1, args.epochs),
        }

    return training.load_or_train_dense(
        dense_config, build, train, os.path.join(args.results_dir, "cache")
    )


def cached_run(ctx, runs_dir, tag, run_config, method, kind, value, fields):
    """One method's row: read from `runs_dir` if done before, else run.

    Args:
        ctx: the `methods.Context` of the (model, seed).
        runs_dir: folder of the finished runs' JSON files.
        tag: readable part of the file name.
        run_config: dict of everything that defines the run (hashed into
            the file name, so a changed setting runs again).
        method, kind, value: as `methods.run` takes them.
        fields: extra entries of the row (dataset, model, target...).

    Returns:
        `(row, cached)`.
    """
    from benchmarks.quality import methods as methods_lib
    from benchmarks.quality import training

    key = training.config_hash(run_config)
    path = os.path.join(runs_dir, f"{tag}_{key}.json")
    row = _load_row(path)
    if row is not None:
        return row, True
    row, hist = methods_lib.run(ctx, method, kind, value)
    row.update(fields)
    row.update(
        {
            "dense_acc": ctx.dense_meta["accuracy"],
            "dense_flops": int(ctx.base_cost.flops),
            "dense_params": int(ctx.base_cost.params),
            "run_key": key,
            "library_hash": run_config.get("library"),
            "histogram": hist,
        }
    )
    with open(path + ".tmp", "w") as f:
        json.dump(row, f, indent=1)
    os.replace(path + ".tmp", path)
    return row, False


def _load_row(path):
    """A finished run's row, or None (absent or unreadable: run again)."""
    try:
        with open(path) as f:
            row = json.load(f)
    except (OSError, ValueError):
        return None
    needed = ("acc_final", "flops_kept", "method", "seed", "wall_s")
    if not isinstance(row, dict) or any(k not in row for k in needed):
        return None
    return row
