"""How much accuracy RNI's mask costs right after its regularised epochs.

Trains (once, cached in `--cache`) a 6-conv VGG with BatchNorm on real
Fashion-MNIST, then for each JSON spec on the command line wraps it with
`prune_structured(criterion=RNI(...))`, trains the regularised epochs, and
prints one JSON line: test accuracy before and after the mask, and the
importance percentiles. Example:

    python -m benchmarks.rni_mask_cost '{"tag": "default"}' \\
        '{"tag": "paper", "recede": false}' '{"tag": "half", "ratio": 0.5}'

Spec keys: tag, ratio (0.9), epochs (3), optimizer ("sgd" or "adam"), lr,
fresh (prune an untrained model), strength, shift, recede,
receded_importance, and any `prune_structured` keyword.
"""

import argparse
import json
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(
    ROOT, "..", "shared", "data", "fashion-mnist", "fashion_mnist.npz"
)
_CRITERION_KEYS = ("strength", "shift", "recede", "receded_importance")


def _data(path, n_train):
    if not os.path.exists(path):
        raise SystemExit(
            f"Fashion-MNIST not found at {path}; pass --data PATH to a "
            "fashion_mnist.npz (the keras.datasets layout)."
        )
    d = np.load(path)

    def prep(x):
        return ((x.astype("float32") / 255 - 0.286) / 0.353)[..., None]

    return (
        prep(d["x_train"][:n_train]),
        d["y_train"][:n_train],
        prep(d["x_test"][:3000]),
        d["y_test"][:3000],
    )


def _vgg(seed):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    h = inputs
    for width in (32, 32, "pool", 64, 64, "pool", 128, 128):
        if width == "pool":
            h = keras.layers.MaxPooling2D()(h)
            continue
        h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def _optimizer(kind, lr):
    import keras

    if kind == "sgd":
        return keras.optimizers.SGD(
            lr, momentum=0.9, nesterov=True, weight_decay=5e-4
        )
    return keras.optimizers.Adam(lr)


def _importances(model):
    from keras_neuronprune.layers import BoundedBatchNormalization

    return np.concatenate(
        [
            layer.importances()
            for layer in model.layers
            if isinstance(layer, BoundedBatchNormalization)
        ]
    )


def run(spec, dense, data, batch_size=128):
    import keras

    import keras_neuronprune as knp

    x, y, xt, yt = data
    spec = dict(spec)
    tag = spec.pop("tag", "run")
    ratio = spec.pop("ratio", 0.9)
    epochs = spec.pop("epochs", 3)
    kind = spec.pop("optimizer", "sgd")
    lr = spec.pop("lr", 0.05 if kind == "sgd" else 1e-3)
    base = _vgg(1) if spec.pop("fresh", False) else dense
    criterion = knp.criteria.RNI(
        **{k: spec.pop(k) for k in _CRITERION_KEYS if k in spec}
    )
    steps = epochs * int(np.ceil(len(x) / batch_size))
    start = time.time()
    pruned = knp.prune_structured(
        base,
        criterion=criterion,
        pruning_ratio=ratio,
        schedule=knp.schedules.OneShot(step=steps),
        **spec,
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pruned.compile(_optimizer(kind, lr), loss, metrics=["accuracy"])
    pruned.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
        callbacks=[knp.callbacks.UpdatePruning()],
    )
    imp = _importances(pruned)
    before = pruned.evaluate(xt, yt, verbose=0)[1]
    pruned.controller.prune(pruned)
    after = pruned.evaluate(xt, yt, verbose=0)[1]
    return {
        "tag": tag,
        "acc_before_mask": round(before, 4),
        "acc_after_mask": round(after, 4),
        "importance_pct_5_25_50_75_90_95": np.percentile(
            imp, [5, 25, 50, 75, 90, 95]
        )
        .round(5)
        .tolist(),
        "seconds": round(time.time() - start),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="JSON run specs")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--train-images", type=int, default=12000)
    parser.add_argument("--cache", default="rni_mask_cost_dense.keras")
    args = parser.parse_args(argv)
    data = _data(args.data, args.train_images)
    import keras

    if not os.path.exists(args.cache):
        model = _vgg(0)
        model.compile(
            _optimizer("sgd", 0.05),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(data[0], data[1], batch_size=128, epochs=3, verbose=0)
        model.save(args.cache)
    dense = keras.models.load_model(args.cache)
    for text in args.specs:
        print(json.dumps(run(json.loads(text), dense, data)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
