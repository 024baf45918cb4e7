"""Every weight-sparsity method on scikit-learn's digits, side by side.

Trains a 64-64-64-10 MLP densely, then runs each method of
`keras_neuronprune.sparsity.prune_weights` at the same sparsity:
magnitude and NNrelief prune the trained dense model and fine-tune it,
SNIP, RigL, SCL and ISS-P train sparse from a fresh initialisation, and
"scratch" re-initialises the magnitude-pruned connectivity
(`reinitialize`, the Rethinking baseline). Prints test accuracy and the
sparsity of the stripped kernels, and writes them to JSON.

Run:
  python examples/sparse_training_digits.py --sparsity 0.9 \
      --out results/sparse_digits.json
  python examples/sparse_training_digits.py --smoke   # seconds, for CI
"""

import argparse
import json
import os

import keras
import numpy as np

from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity import reinitialize
from keras_neuronprune.sparsity import strip_weight_pruning
from keras_neuronprune.sparsity.methods import IssPMethod
from keras_neuronprune.sparsity.methods import MagnitudeMethod
from keras_neuronprune.sparsity.methods import NNReliefMethod
from keras_neuronprune.sparsity.methods import RigLMethod
from keras_neuronprune.sparsity.methods import SclMethod
from keras_neuronprune.sparsity.methods import SnipMethod
from keras_neuronprune.sparsity.schedules import PolynomialDecay

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def load_digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def mlp(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu", name="fc1")(inputs)
    h = keras.layers.Dense(64, activation="relu", name="fc2")(h)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(h))


def compile_model(model):
    model.compile(keras.optimizers.Adam(3e-3), LOSS, metrics=["accuracy"])
    return model


def evaluate(model, x, y):
    logits = np.asarray(model.predict(x, batch_size=256, verbose=0))
    return float((logits.argmax(axis=1) == y).mean())


def kernel_sparsity(model, names):
    kernels = [model.get_layer(n).kernel.numpy() for n in names]
    return sum(int((k == 0).sum()) for k in kernels) / sum(
        k.size for k in kernels
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="results/sparse_digits.json")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 1

    xtr, xte, ytr, yte = load_digits_split()
    steps = args.epochs * int(np.ceil(len(xtr) / args.batch_size))
    s = args.sparsity
    calibration = (xtr[:256], ytr[:256])
    ramp = max(steps // 4, 1)

    dense = compile_model(mlp(0))
    dense.fit(
        xtr, ytr, batch_size=args.batch_size, epochs=args.epochs, verbose=0
    )
    results = {
        "dense": {"accuracy": evaluate(dense, xte, yte), "sparsity": 0.0}
    }

    # name -> (model to prune: None for a fresh one, method, shared args).
    runs = {
        "magnitude": (
            dense,
            MagnitudeMethod(),
            {"schedule": PolynomialDecay(0.0, s, 0, ramp, frequency=10)},
        ),
        "nnrelief": (
            dense,
            NNReliefMethod(),
            {
                "schedule": PolynomialDecay(0.0, s, 0, ramp, frequency=20),
                "data": calibration,
            },
        ),
        "snip": (
            None,
            SnipMethod(),
            {"sparsity": s, "data": calibration, "loss": LOSS},
        ),
        "rigl": (
            None,
            RigLMethod(
                end_step=max(int(0.75 * steps), 1), update_frequency=20, seed=0
            ),
            {"sparsity": s, "data": calibration, "loss": LOSS},
        ),
        "scl": (
            None,
            SclMethod(end_step=max(int(0.6 * steps), 1)),
            {"sparsity": s},
        ),
        "iss_p": (
            None,
            IssPMethod(end_step=max(int(0.6 * steps), 1)),
            {"sparsity": s},
        ),
    }
    if args.smoke:
        runs = {k: runs[k] for k in ("magnitude", "rigl")}
    names = ["fc1", "fc2", "logits"]
    magnitude_model = None
    for method, (source, algorithm, kwargs) in runs.items():
        source = source if source is not None else mlp(1)
        pruned = compile_model(
            prune_weights(source, method=algorithm, **kwargs)
        )
        pruned.fit(
            xtr,
            ytr,
            batch_size=args.batch_size,
            epochs=args.epochs,
            verbose=0,
            callbacks=[UpdatePruning()],
        )
        stripped = strip_weight_pruning(pruned)
        results[method] = {
            "accuracy": evaluate(stripped, xte, yte),
            "sparsity": kernel_sparsity(stripped, names),
        }
        if method == "magnitude":
            magnitude_model = pruned
        print(method, results[method], flush=True)

    scratch = compile_model(reinitialize(magnitude_model, seed=2))
    scratch.fit(
        xtr,
        ytr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    stripped = strip_weight_pruning(scratch)
    results["scratch (magnitude mask)"] = {
        "accuracy": evaluate(stripped, xte, yte),
        "sparsity": kernel_sparsity(stripped, names),
    }
    print("| method | test accuracy | kernel sparsity |")
    print("|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['accuracy']:.4f} | {row['sparsity']:.4f} |")
    if not args.smoke:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"epochs": args.epochs, "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
