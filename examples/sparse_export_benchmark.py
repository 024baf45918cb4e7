"""What weight sparsity buys at export time: .tflite size, zip size, latency.

Builds a MobileNetV1-style network (3x3 stride-2 stem on 3 channels,
depthwise 3x3 + pointwise 1x1 blocks, global average pooling, Dense head:
the shape XNNPACK's sparse inference expects), prunes it with
`keras_neuronprune.sparsity.prune_weights` (one-shot magnitude pruning;
the weights are the random initialisation, which compresses like trained
weights of the same sparsity), strips it and exports every variant to
.tflite. For each one it reports the raw file size, the zip/deflate size
(tfmot's `get_gzipped_model_size`) and the LiteRT interpreter latency
(XNNPACK, interleaved timing from `tflite_bench.base_benchmark`), and
checks that the .tflite reproduces the Keras model.

Variants:
  dense                  the unpruned model
  sparse50 / sparse90    50% / 90% of every kernel zeroed (all layers)
  xnnpack90              90% of the 1x1 convolutions zeroed
                         (`prune_weights(..., xnnpack_sparse=True)`)
  dense+flag, xnnpack90+flag
                         the same models converted with
                         `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`, which
                         stores sparse weights in the sparse format (with
                         DENSIFY ops) XNNPACK's sparse kernels need

Run (numbers in docs/sparsity.md):
  python examples/sparse_export_benchmark.py --out results/sparse_export.json
  python examples/sparse_export_benchmark.py --smoke   # seconds, for CI
"""

import argparse
import io
import json
import os
import platform
import tempfile
import zipfile

import keras
import numpy as np

import keras_neuronprune.export
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity import strip_weight_pruning
from tflite_bench.base_benchmark import make_interpreter
from tflite_bench.base_benchmark import time_interleaved


def mobilenet_v1(resolution=128, alpha=0.5, classes=100):
    """MobileNetV1 (no BN, so every kernel is what the file stores)."""
    keras.utils.set_random_seed(0)
    width = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    inputs = keras.Input((resolution, resolution, 3))
    h = keras.layers.ZeroPadding2D(1)(inputs)
    h = keras.layers.Conv2D(
        int(32 * alpha),
        3,
        strides=2,
        activation="relu",
        kernel_initializer="he_normal",
        name="stem",
    )(h)
    for i, (filters, stride) in enumerate(zip(width, strides)):
        if stride == 2:
            h = keras.layers.ZeroPadding2D(1)(h)
        h = keras.layers.DepthwiseConv2D(
            3,
            strides=stride,
            padding="valid" if stride == 2 else "same",
            activation="relu",
            # He init with the true fan-in (9): Keras counts the channels
            # of a depthwise kernel as fan-in and would shrink activations.
            depthwise_initializer=keras.initializers.RandomNormal(
                stddev=(2.0 / 9.0) ** 0.5
            ),
            name=f"dw{i}",
        )(h)
        h = keras.layers.Conv2D(
            int(filters * alpha),
            1,
            activation="relu",
            kernel_initializer="he_normal",
            name=f"pw{i}",
        )(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(classes, name="head")(h)
    return keras.Model(inputs, outputs, name="mobilenet_v1")


def one_shot(model, sparsity, **kwargs):
    """Prunes at step 0 (what the first `fit` batch would do) and strips."""
    pruned = prune_weights(model, sparsity=sparsity, **kwargs)
    pruned.controller.on_train_begin(pruned)
    pruned.controller.on_train_batch_begin(pruned, 0)
    measured = pruned.controller.summary_scalars(pruned)["sparsity"]
    return strip_weight_pruning(pruned), measured


def zipped_size(path):
    """tfmot's get_gzipped_model_size: the file in a deflated zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as f:
        f.write(path, arcname=os.path.basename(path))
    return buffer.getbuffer().nbytes


def export_with_sparsity_flag(model, path):
    import tensorflow as tf

    model.export(
        path,
        format="litert",
        verbose=False,
        input_signature=[
            keras.InputSpec(
                shape=(1,) + tuple(model.input.shape[1:]), dtype="float32"
            )
        ],
        optimizations=[tf.lite.Optimize.EXPERIMENTAL_SPARSITY],
    )


def densify_ops(path):
    """Number of DENSIFY operators (sparse weights stored sparsely)."""
    report = keras_neuronprune.export.check_gpu_compatibility(path)
    return int(report.op_counts.get("DENSIFY", 0))


def max_abs_diff(path, model, x):
    interpreter = make_interpreter(path, 1)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(out["index"])
    return float(np.abs(got - np.asarray(model(x))).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/sparse_export.json")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.resolution, args.rounds, args.threads = 32, 2, [1]

    dense = mobilenet_v1(args.resolution)
    variants = {"dense": (dense, 0.0)}
    variants["sparse50"] = one_shot(dense, 0.5)
    variants["sparse90"] = one_shot(dense, 0.9)
    variants["xnnpack90"] = one_shot(dense, 0.9, xnnpack_sparse=True)

    x = np.random.default_rng(0).normal(
        size=(1, args.resolution, args.resolution, 3)
    )
    x = x.astype("float32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, (model, sparsity) in variants.items():
            path = os.path.join(tmp, f"{name}.tflite")
            keras_neuronprune.export.tflite(model, path)
            paths[name] = (path, model, sparsity)
        for name in ("dense", "xnnpack90"):
            model, sparsity = variants[name]
            path = os.path.join(tmp, f"{name}+flag.tflite")
            export_with_sparsity_flag(model, path)
            paths[f"{name}+flag"] = (path, model, sparsity)
        names = list(paths)
        latency = {
            threads: time_interleaved(
                [paths[n][0] for n in names],
                num_threads=threads,
                warmup=5,
                rounds=args.rounds,
                runs_per_round=5,
            )
            for threads in args.threads
        }
        for i, name in enumerate(names):
            path, model, sparsity = paths[name]
            rows.append(
                {
                    "variant": name,
                    "sparsity_of_pruned_kernels": round(float(sparsity), 4),
                    "tflite_bytes": os.path.getsize(path),
                    "zipped_bytes": zipped_size(path),
                    "max_abs_diff_vs_keras": max_abs_diff(path, model, x),
                    "densify_ops": densify_ops(path),
                    **{
                        f"median_ms_{t}thread": round(
                            latency[t][i].median_ms, 3
                        )
                        for t in args.threads
                    },
                }
            )
    meta = {
        "model": f"MobileNetV1 alpha=0.5 {args.resolution}x{args.resolution}",
        "params": int(dense.count_params()),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "tensorflow_keras": keras.__version__,
        "rounds": args.rounds,
    }
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    if not args.smoke:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
    scale = float(np.abs(np.asarray(dense(x))).max())
    assert scale > 1e-3, "activations vanished: the parity check is void"
    for row in rows:
        assert row["max_abs_diff_vs_keras"] <= 1e-4 * max(1.0, scale), row
    return rows


if __name__ == "__main__":
    main()
