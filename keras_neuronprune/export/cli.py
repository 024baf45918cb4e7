"""`keras-neuronprune export`: the command-line front end of the exporters.

Wiring (in `keras_neuronprune/cli.py`):

```python
from keras_neuronprune.export.cli import add_export_parser

subparsers = parser.add_subparsers(dest="command")
add_export_parser(subparsers)   # sets func=run_export
args = parser.parse_args()
sys.exit(args.func(args))
```

Example:

```
keras-neuronprune export model.keras --format tflite --quantization int8 \\
    --representative-data calib.npy --output model_int8.tflite
```
"""

import os
import sys

import numpy as np


def add_export_parser(subparsers):
    """Adds the `export` sub-command to an argparse sub-parsers object.

    Args:
        subparsers: the object returned by `parser.add_subparsers()`.

    Returns:
        The `export` sub-parser; its default `func` is `run_export`.
    """
    p = subparsers.add_parser(
        "export",
        help="export a .keras model to TFLite (LiteRT) or ONNX",
        description=(
            "Export a saved Keras model to .tflite or .onnx. Every export "
            "runs the artifact (LiteRT interpreter / onnxruntime) and "
            "compares it with the Keras model; a failed parity check is an "
            "error. Pruned models saved as PrunedModel are stripped first."
        ),
    )
    p.add_argument("model", help="path to a .keras model file")
    p.add_argument(
        "--format",
        choices=("tflite", "onnx"),
        default="tflite",
        help="output format (default: tflite)",
    )
    p.add_argument(
        "--output",
        "-o",
        required=True,
        help="output path (.tflite or .onnx)",
    )
    p.add_argument(
        "--quantization",
        choices=("none", "float16", "dynamic", "int8"),
        default="none",
        help="TFLite quantization (default: none = float32)",
    )
    p.add_argument(
        "--representative-data",
        metavar="NPY_OR_NPZ",
        help=(
            "samples for int8 calibration and parity: a .npy array, or a "
            ".npz (uses key 'x', 'x_train', 'x_test' or its only array)"
        ),
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="use at most this many representative samples",
    )
    p.add_argument(
        "--int8-io",
        action="store_true",
        help="int8 model inputs/outputs (with --quantization int8)",
    )
    p.add_argument(
        "--require-gpu-compatible",
        action="store_true",
        help="fail if any op cannot run on the TFLite GPU delegate",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="fixed batch size (TFLite default 1, ONNX default dynamic)",
    )
    p.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="keep the batch axis dynamic in TFLite exports",
    )
    p.add_argument(
        "--opset", type=int, default=17, help="ONNX opset (default 17)"
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the export report (parity, GPU check) as JSON",
    )
    p.set_defaults(func=run_export)
    return p


def run_export(args):
    """Runs `keras-neuronprune export` for parsed `args`.

    Returns:
        Process exit code: 0 on success, 1 when the export fails its parity
        or GPU check, 2 on bad input.
    """
    from keras_neuronprune.export.export_parity_error import ExportParityError
    from keras_neuronprune.export.gpu_compatibility_error import (
        GpuCompatibilityError,
    )

    try:
        result = _export(args)
    except (GpuCompatibilityError, ExportParityError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(result.to_json(indent=2))
        print(f"report written to {args.json}")
    return 0


def _export(args):
    if not os.path.isfile(args.model):
        raise FileNotFoundError(
            f"Model file not found. Received: model={args.model!r}"
        )
    if args.format == "onnx" and args.quantization != "none":
        raise ValueError(
            "--quantization applies to TFLite only. Received: "
            f"--quantization {args.quantization} with --format onnx"
        )
    if args.num_samples is not None and args.num_samples < 1:
        raise ValueError(
            "--num-samples must be >= 1. Received: "
            f"--num-samples {args.num_samples}"
        )
    # Fail on an unwritable output before loading and converting anything.
    from keras_neuronprune.export import _common

    suffix = ".tflite" if args.format == "tflite" else ".onnx"
    _common.check_output_path(args.output, suffix, arg_name="--output")
    data = None
    if args.representative_data:
        data = load_array(args.representative_data)
        if args.num_samples:
            data = data[: args.num_samples]

    import keras

    try:  # registers keras_neuronprune layers for deserialization
        import keras_neuronprune  # noqa: F401
    except ImportError:
        pass
    model = keras.saving.load_model(args.model, compile=False)

    if args.format == "onnx":
        from keras_neuronprune.export.onnx_export import onnx

        return onnx(
            model,
            args.output,
            opset=args.opset,
            batch_size=args.batch_size,
            parity_data=data,
        )
    from keras_neuronprune.export.tflite_export import tflite

    batch_size = None if args.dynamic_batch else (args.batch_size or 1)
    return tflite(
        model,
        args.output,
        quantization=args.quantization,
        representative_data=data,
        int8_io=args.int8_io,
        require_gpu_compatible=args.require_gpu_compatible,
        batch_size=batch_size,
    )


def load_array(path):
    """Loads samples from a .npy or .npz file (see `--representative-data`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Data file not found. Received: --representative-data={path!r}"
        )
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded
    keys = list(loaded.keys())
    for key in ("x", "x_train", "x_test", "images"):
        if key in keys:
            return loaded[key]
    if len(keys) == 1:
        return loaded[keys[0]]
    raise ValueError(
        "Cannot tell which array of the .npz holds the samples; name it "
        f"'x'. Received keys: {keys}"
    )


def main(argv=None):
    """Stand-alone entry point: `python -m keras_neuronprune.export.cli`."""
    import argparse

    parser = argparse.ArgumentParser(prog="keras-neuronprune")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_export_parser(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
