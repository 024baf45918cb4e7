"""Prune a small CNN, then ship it as TFLite (float32, float16, int8) + ONNX.

Trains a small CNN on Fashion-MNIST (or random data with --smoke), removes
50% of its channels with `uniform_keep(..., round_to=8)` + `thin_model`,
fine-tunes briefly, and exports with `keras_neuronprune.export`. Every
export checks its parity against the Keras model (and the int8 one its
top-1 agreement on the calibration data) and reports GPU-delegate
compatibility.

Run:

```
python examples/export_pruned_to_mobile.py \\
    --data ../shared/data/fashion-mnist/fashion_mnist.npz --out /tmp/knp_export
python examples/export_pruned_to_mobile.py --smoke     # seconds, no data
```
"""

import argparse
import os

import keras
import numpy as np

import keras_neuronprune
from keras_neuronprune import export


def load_data(path, smoke):
    if smoke or not path or not os.path.exists(path):
        rng = np.random.default_rng(0)
        x = rng.uniform(size=(512, 28, 28, 1)).astype("float32")
        y = rng.integers(0, 10, size=512)
        return (x[:384], y[:384]), (x[384:], y[384:])
    data = np.load(path)
    x_train = data["x_train"][..., None].astype("float32") / 255.0
    x_test = data["x_test"][..., None].astype("float32") / 255.0
    return (x_train, data["y_train"]), (x_test, data["y_test"])


def build_model():
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="fashion_mnist.npz")
    parser.add_argument("--out", default="/tmp/knp_export")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    epochs = 1 if args.smoke else args.epochs

    (x_train, y_train), (x_test, y_test) = load_data(args.data, args.smoke)
    model = build_model()
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=2)

    keep = keras_neuronprune.uniform_keep(model, 0.5, round_to=8)
    pruned, _ = keras_neuronprune.thin_model(model, keep)
    pruned.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    pruned.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=2)
    print(
        "params:",
        keras_neuronprune.count_cost(model).params,
        "->",
        keras_neuronprune.count_cost(pruned).params,
    )

    os.makedirs(args.out, exist_ok=True)
    calib = x_train[:200]
    for quant in (None, "float16", "int8"):
        name = quant or "float32"
        result = export.tflite(
            pruned,
            os.path.join(args.out, f"pruned_{name}.tflite"),
            quantization=quant,
            representative_data=calib,
            int8_io=quant == "int8",
            require_gpu_compatible=True,
        )
        print(result)
    print(export.onnx(pruned, os.path.join(args.out, "pruned.onnx")))
    print(
        "Keras test accuracy of the pruned model:",
        pruned.evaluate(x_test, y_test, verbose=0)[1],
    )


if __name__ == "__main__":
    main()
