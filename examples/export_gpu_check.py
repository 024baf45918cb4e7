"""Check whether a .tflite model runs entirely on the TFLite GPU delegate.

TF 2.21's `tf.lite.experimental.Analyzer(gpu_compatibility=True)` reports
every model as compatible, so `keras_neuronprune.export` reads the
operators from the flatbuffer and checks them against the GPU delegate's
rules. This script exports a model with a GPU-unfriendly operator (top-k)
and a clean one, and prints both reports; pass a path to check your own
.tflite file.

Run:

```
python examples/export_gpu_check.py                 # the two demo models
python examples/export_gpu_check.py model.tflite    # your file
python examples/export_gpu_check.py --smoke
```
"""

import argparse
import os
import tempfile

import keras

from keras_neuronprune import export


def demo_models():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu6")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(10)(x)
    clean = keras.Model(inputs, logits, name="clean")
    top2 = keras.layers.Lambda(lambda t: keras.ops.top_k(t, k=2)[0])(logits)
    with_topk = keras.Model(inputs, [logits, top2], name="with_topk")
    return clean, with_topk


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tflite", nargs="?", help="a .tflite file to check")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.tflite:
        report = export.check_gpu_compatibility(args.tflite)
        report.runtime = export.runtime_gpu_check(args.tflite)
        print(report)
        return 0 if report.compatible else 1
    out = tempfile.mkdtemp(prefix="knp_gpu_check_")
    for model in demo_models():
        path = os.path.join(out, f"{model.name}.tflite")
        try:
            result = export.tflite(model, path, require_gpu_compatible=True)
            print(f"{model.name}: OK\n{result.gpu}\n")
        except export.GpuCompatibilityError as e:
            print(f"{model.name}: rejected\n{e.report}\n")
    return 0


if __name__ == "__main__":
    main()
