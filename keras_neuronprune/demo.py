"""`keras-neuronprune demo`: the whole flow on scikit-learn's digits, offline.

Trains a small CNN on the 8x8 digits bundled with scikit-learn, prunes it
with Receding Neuron Importances (RNI: BatchNormalization scales bounded by
a sigmoid, a regulariser that pushes weak channels towards 0, one global
threshold), fine-tunes, strips the model to a physically thinner plain
Keras model, and prints a before/after table (accuracy, parameters, FLOPs,
channels per layer). It also writes a histogram of the channel importances
at pruning time (`importances.png`), the final `.keras` model
(`pruned.keras`) and 200 calibration images (`calib.npy`), and ends with the
command that exports the model to an int8 `.tflite`.

Run:

    keras-neuronprune demo              # about half a minute on 2 cores
    keras-neuronprune demo --smoke      # a few seconds (checks the flow)
    keras-neuronprune demo --output-dir /tmp/demo
"""

import argparse
import os
import sys
import time

import numpy as np


def add_demo_parser(subparsers):
    """Adds the `demo` sub-command to an argparse `subparsers` object.

    Returns:
        The new `argparse.ArgumentParser` (its default `func` is
        `run_demo`).
    """
    parser = subparsers.add_parser(
        "demo",
        help="prune a small CNN on scikit-learn digits with RNI (offline)",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_demo)
    return parser


def _add_arguments(parser):
    from keras_neuronprune.cli import add_renamed_flag

    parser.add_argument(
        "--pruning-ratio",
        type=float,
        default=0.6,
        metavar="R",
        help="fraction of the prunable channels to remove (default 0.6)",
    )
    add_renamed_flag(parser, "--ratio", "--pruning-ratio", type=float)
    parser.add_argument(
        "--criterion",
        default="rni",
        help="importance criterion (default rni; e.g. l1, bn_scale)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="baseline training epochs"
    )
    parser.add_argument(
        "--regularize-epochs",
        type=int,
        default=None,
        help="epochs with the sparsity regulariser before pruning",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=None,
        help="fine-tuning epochs after pruning",
    )
    parser.add_argument(
        "--output-dir",
        default="neuronprune_demo",
        help=(
            "where to write importances.png, pruned.keras and calib.npy "
            "(default neuronprune_demo)"
        ),
    )
    parser.add_argument(
        "--rni-strength",
        type=float,
        default=1e-3,
        help="RNI regulariser strength lambda (default 1e-3, the paper's "
        "VGG value)",
    )
    parser.add_argument(
        "--rni-shift",
        type=float,
        default=3.0,
        help="RNI regulariser shift b (default 3)",
    )
    parser.add_argument(
        "--gamma-mapping",
        default="relative",
        choices=("relative", "clip", "constant"),
        help="how trained BN scales become bounded scales (default "
        "relative: importance = |gamma| / max|gamma| of the layer)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.05,
        help="SGD learning rate while pruning and fine-tuning (default 0.05)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run that only checks the flow (seconds)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no per-epoch progress lines"
    )


def load_digits_data(seed=0, test_fraction=0.2, limit=None):
    """Digits as `(x_train, y_train, x_test, y_test)`, images (8, 8, 1)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    if limit is not None:
        order = order[:limit]
    x, y = x[order], y[order]
    n_test = max(1, int(len(x) * test_fraction))
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def build_digits_cnn(width=1.0):
    """A small CNN for 8x8 digits (conv-BN-ReLU blocks and a residual add)."""
    import keras

    def c(n):
        return max(4, int(n * width))

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(c(32), 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(c(64), 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    y = keras.layers.Conv2D(c(64), 3, padding="same", name="conv3")(x)
    y = keras.layers.BatchNormalization(momentum=0.9, name="bn3")(y)
    y = keras.layers.ReLU(name="relu3")(y)
    y = keras.layers.Conv2D(c(64), 3, padding="same", name="conv4")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name="bn4")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.ReLU(name="relu4")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(c(64), activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def _compile(model, learning_rate, sgd=False):
    import keras

    if sgd:
        # RNI's optimizer: SGD with Nesterov momentum. The bounded scales'
        # gradients are scaled by 10 inside the layer, the paper's 10x
        # learning rate on them (Adam would undo that scaling).
        optimizer = keras.optimizers.SGD(
            learning_rate, momentum=0.9, nesterov=True
        )
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _accuracy(model, x, y):
    import keras

    # Feed the structure the model was built with (avoids Keras' warning).
    feed = keras.tree.pack_sequence_as(model.input, [x])
    logits = keras.ops.convert_to_numpy(model(feed, training=False))
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def _channels(model):
    import keras

    out = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out[layer.name] = int(
                getattr(layer, "filters", None) or layer.units
            )
    return out


def plot_importances(histograms, threshold, path, title):
    """Writes a histogram of importance scores (one color per group)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    values = [np.asarray(v) for v in histograms.values()]
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    bins = np.linspace(low, high if high > low else low + 1, 30)
    ax.hist(values, bins=bins, stacked=True, label=list(histograms))
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label="threshold")
    ax.set_xlabel("channel importance at pruning time")
    ax.set_ylabel("channels")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _format_table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append(
            "  ".join(str(v).rjust(w) for v, w in zip(row, widths)).rstrip()
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _check_args(args):
    """One-line errors naming the flag, the value and a fix."""
    from keras_neuronprune import criteria
    from keras_neuronprune.cli import flag_as_typed

    flag = flag_as_typed(args, "--pruning-ratio")
    ratio = args.pruning_ratio
    if not 0.0 <= ratio < 1.0:
        raise ValueError(
            f"{flag} must be in [0, 1) (the fraction of channels to "
            f"remove). Received: {flag}={ratio!r}; e.g. {flag} 0.6."
        )
    for flag in ("epochs", "regularize_epochs", "finetune_epochs"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            name = "--" + flag.replace("_", "-")
            raise ValueError(
                f"{name} must be >= 0. Received: {name}={value}; e.g. {name} 2."
            )
    if not args.learning_rate > 0:
        raise ValueError(
            "--learning-rate must be > 0. Received: "
            f"--learning-rate={args.learning_rate}; e.g. 0.05."
        )
    try:
        criteria.get(args.criterion)
    except (ValueError, TypeError):
        known = ", ".join(sorted(criteria.all_criteria()))
        raise ValueError(
            f"unknown --criterion. Received: --criterion={args.criterion!r}; "
            f"choose one of {known}."
        ) from None


def _result_rows(accuracies, costs, before, after):
    """The before / after table: accuracy, parameters, FLOPs, channels."""
    (base_acc, final_acc), (base_cost, final_cost) = accuracies, costs
    rows = [("", "before", "after", "change")]
    rows.append(
        (
            "test accuracy",
            f"{base_acc:.4f}",
            f"{final_acc:.4f}",
            f"{final_acc - base_acc:+.4f}",
        )
    )
    for label, b, a in (
        ("parameters", base_cost.params, final_cost.params),
        ("FLOPs", base_cost.flops, final_cost.flops),
    ):
        rows.append((label, f"{b:,}", f"{a:,}", f"x{a / b:.2f}"))
    for name in before:
        rows.append(
            (
                f"channels {name}",
                before[name],
                after.get(name, before[name]),
                f"-{before[name] - after.get(name, before[name])}",
            )
        )
    return rows


def _plot(pruned, histograms, plot_path, args):
    """Plots the importances with the highest removed one as threshold."""
    kept = pruned.controller.keep_sets(pruned)
    removed_max = [
        float(np.max(np.delete(v, kept[g])))
        for g, v in histograms.items()
        if g in kept and len(kept[g]) < len(v)
    ]
    threshold = max(removed_max) if removed_max else None
    plot_importances(
        histograms,
        threshold,
        plot_path,
        f"{args.criterion} importances of digits_cnn "
        f"(ratio {args.pruning_ratio:.0%})",
    )


def _save_outputs(final, x_train, output_dir, say):
    """Saves the model and calibration data; prints the export command.

    Returns:
        `(model_path, calibration_path, next_command)`.
    """
    model_path = os.path.join(output_dir, "pruned.keras")
    final.save(model_path)
    say(f"wrote {model_path} (a plain Keras model)")
    calib_path = os.path.join(output_dir, "calib.npy")
    np.save(calib_path, x_train[:200])
    say(f"wrote {calib_path} ({min(200, len(x_train))} training images)")
    tflite_path = os.path.join(output_dir, "pruned_int8.tflite")
    next_command = (
        f"keras-neuronprune export {model_path} --format tflite "
        f"--quantization int8 --representative-data {calib_path} "
        f"--output {tflite_path}"
    )
    print()
    print("next, export it for a phone (int8 TFLite):")
    print(f"  {next_command}")
    return model_path, calib_path, next_command


def _fit(model, train, test, batch_size, epochs, verbose, callbacks=None):
    """Fits `model` on `train`, validating on `test`; returns its accuracy."""
    model.fit(
        *train,
        batch_size=batch_size,
        epochs=epochs,
        verbose=verbose,
        validation_data=test,
        callbacks=callbacks,
    )
    return _accuracy(model, *test)


def _parse(argv):
    parser = argparse.ArgumentParser(prog="keras-neuronprune demo")
    _add_arguments(parser)
    return parser.parse_args(argv or [])


def _epochs(args, smoke):
    """Baseline, regularisation and fine-tuning epochs (smoke: 1 each)."""
    defaults = (1, 1, 1) if smoke else (12, 6, 8)
    given = (args.epochs, args.regularize_epochs, args.finetune_epochs)
    return tuple(d if g is None else g for g, d in zip(given, defaults))


def _prune_and_finetune(
    model, args, train, test, batch_size, epochs, verbose, say
):
    """Regularises, prunes once and fine-tunes a copy of `model`.

    Returns:
        (pruned model, its final test accuracy, the accuracy right before
        the masks changed or None).
    """
    import keras

    from keras_neuronprune.callbacks import UpdatePruning
    from keras_neuronprune.criteria.rni import RNI
    from keras_neuronprune.pruning import prune_structured
    from keras_neuronprune.schedules import OneShot

    (x_train, y_train), (x_test, y_test) = train, test
    reg_epochs, ft_epochs = epochs
    criterion = args.criterion
    if criterion == "rni":
        criterion = RNI(strength=args.rni_strength, shift=args.rni_shift)
    prune_step = reg_epochs * int(np.ceil(len(x_train) / batch_size))
    # The classifier's hidden units have no BatchNormalization, which RNI
    # reads; like the paper, prune the convolutional channels only.
    pruned = prune_structured(
        model,
        criterion=criterion,
        pruning_ratio=args.pruning_ratio,
        schedule=OneShot(step=prune_step),
        ignored_layers=["fc"],
        bn_gamma_mapping=args.gamma_mapping,
    )
    _compile(pruned, args.learning_rate, sgd=True)
    say(
        f"pruning with {args.criterion!r}: {reg_epochs} epoch(s) with the "
        f"regulariser, prune {args.pruning_ratio:.0%} of the channels at step "
        f"{prune_step}, then {ft_epochs} epoch(s) of fine-tuning"
    )
    history_snapshot = {}

    class _Snapshot(keras.callbacks.Callback):
        # Importances right before the masks change (the pruning step).
        def on_train_batch_begin(self, batch, logs=None):
            step = int(pruned.pruning_step.numpy())
            if step == prune_step and not history_snapshot:
                history_snapshot["acc"] = _accuracy(pruned, x_test, y_test)

    pruned_acc = _fit(
        pruned,
        (x_train, y_train),
        (x_test, y_test),
        batch_size,
        reg_epochs + ft_epochs,
        verbose,
        callbacks=[_Snapshot(), UpdatePruning()],
    )
    return pruned, pruned_acc, history_snapshot.get("acc")


def run_demo(args):
    """Runs the digits demo; `args` is an argparse namespace (or None).

    Returns:
        A dict with the measured numbers (accuracies, params, FLOPs, kept
        channels, output paths).
    """
    if args is None or isinstance(args, (list, tuple)):
        from keras_neuronprune.cli import renamed_flag_notes

        args = _parse(args)
        # `keras-neuronprune demo` prints these in `cli.main`.
        for note in renamed_flag_notes(args):
            print(f"keras-neuronprune demo: warning: {note}", file=sys.stderr)
    import keras

    from keras_neuronprune.cost import count_cost
    from keras_neuronprune.pruning import strip_pruning

    _check_args(args)
    smoke = bool(args.smoke)
    epochs, reg_epochs, ft_epochs = _epochs(args, smoke)
    verbose = 0 if (args.quiet or smoke) else 2
    os.makedirs(args.output_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()

    def say(message):
        print(f"[{time.perf_counter() - start:6.1f}s] {message}", flush=True)

    x_train, y_train, x_test, y_test = load_digits_data(
        args.seed, limit=300 if smoke else None
    )
    batch_size = 64
    say(
        f"digits: {len(x_train)} training and {len(x_test)} test images; "
        f"training the baseline CNN for {epochs} epoch(s)"
    )
    model = build_digits_cnn(width=0.25 if smoke else 1.0)
    _compile(model, 3e-3)
    base_acc = _fit(
        model, (x_train, y_train), (x_test, y_test), batch_size, epochs, verbose
    )
    say(f"baseline test accuracy {base_acc:.4f}")

    pruned, pruned_acc, acc_at_prune = _prune_and_finetune(
        model,
        args,
        (x_train, y_train),
        (x_test, y_test),
        batch_size,
        (reg_epochs, ft_epochs),
        verbose,
        say,
    )
    final = strip_pruning(pruned)
    final_acc = _accuracy(final, x_test, y_test)
    say(f"fine-tuned pruned model: test accuracy {final_acc:.4f}")

    base_cost, final_cost = count_cost(model), count_cost(final)
    before, after = _channels(model), _channels(final)
    print()
    print(
        _format_table(
            _result_rows(
                (base_acc, final_acc), (base_cost, final_cost), before, after
            )
        )
    )
    print()

    histograms = pruned.controller.importance_histograms(pruned)
    plot_path = os.path.join(args.output_dir, "importances.png")
    if histograms:
        _plot(pruned, histograms, plot_path, args)
        say(f"wrote {plot_path}")
    model_path, calib_path, next_command = _save_outputs(
        final, x_train, args.output_dir, say
    )
    return {
        "base_accuracy": base_acc,
        "accuracy_before_pruning": acc_at_prune,
        "pruned_accuracy": pruned_acc,
        "final_accuracy": final_acc,
        "base_params": base_cost.params,
        "final_params": final_cost.params,
        "base_flops": base_cost.flops,
        "final_flops": final_cost.flops,
        "channels_before": before,
        "channels_after": after,
        "plot": plot_path if histograms else None,
        "model": model_path,
        "calibration_data": calib_path,
        "next_command": next_command,
        "seconds": time.perf_counter() - start,
    }


def main(argv=None):
    """`python -m keras_neuronprune.demo`: the same as `keras-neuronprune demo`.

    Returns:
        The exit status (0 on success).
    """
    from keras_neuronprune import cli

    return cli.main(["demo"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
