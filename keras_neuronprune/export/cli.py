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
import re
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
        "--tolerance",
        type=float,
        default=None,
        help=(
            "parity bound: max |diff| / max(1, output scale) for float "
            "exports (default 1e-4, float16 2e-2), max |diff| relative to "
            "the output range for quantized ones (default 0.1)"
        ),
    )
    p.add_argument(
        "--min-top1-agreement",
        type=float,
        default=0.9,
        help=(
            "quantized classifiers: share of confidently classified "
            "samples whose top-1 class must not change (default 0.9)"
        ),
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the export report (parity, GPU check) as JSON",
    )
    p.set_defaults(func=run_export)
    return p


# Library argument names as the command line spells them.
_FLAGS = {
    "representative_data": "--representative-data",
    "parity_data": "--representative-data",
    "int8_io": "--int8-io",
    "batch_size": "--batch-size",
    "opset": "--opset",
    "quantization": "--quantization",
    "tolerance": "--tolerance",
    "min_top1_agreement": "--min-top1-agreement",
    "path": "--output",
    "model": "model",
}


def cli_message(error):
    """One line: the error with library argument names as CLI flags."""
    text = str(error)
    if "\nConverter log" in text:
        text = text.split("\nConverter log")[0]
        text += " (add --verbose to see the converter log)"
    text = " ".join(text.split())
    for name, flag in _FLAGS.items():
        text = text.replace(f"`{name}`", flag)
        text = re.sub(rf"(?<![\w-]){name}=", f"{flag}=", text)
    return text.replace("`", "")


def run_export(args):
    """Runs `keras-neuronprune export` for parsed `args`.

    Returns:
        Process exit code: 0 on success, 1 when the export fails (parity,
        GPU check, conversion, unreadable model file), 2 on bad arguments.
    """
    from keras_neuronprune.export._common import ModelFileError
    from keras_neuronprune.export.export_parity_error import ExportParityError
    from keras_neuronprune.export.gpu_compatibility_error import (
        GpuCompatibilityError,
    )

    try:
        result = _export(args)
    except GpuCompatibilityError as e:
        print(str(e.report), file=sys.stdout)
        print(
            "keras-neuronprune export: error: some operators cannot run on "
            "the TFLite GPU delegate (listed above); drop "
            "--require-gpu-compatible to export anyway.",
            file=sys.stderr,
        )
        return 1
    except ExportParityError as e:
        print(
            f"keras-neuronprune export: error: {cli_message(e)}",
            file=sys.stderr,
        )
        return 1
    except (ModelFileError, RuntimeError, OSError) as e:
        print(
            f"keras-neuronprune export: error: {cli_message(e)}",
            file=sys.stderr,
        )
        return 1
    except (ValueError, TypeError) as e:
        print(
            f"keras-neuronprune export: error: {cli_message(e)}",
            file=sys.stderr,
        )
        return 2
    print(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(result.to_json(indent=2))
        print(f"report written to {args.json}")
    return 0


def _usage(message):
    raise ValueError(message)


def _export(args):
    from keras_neuronprune.export import _common

    if not os.path.exists(args.model):
        _usage(
            f"model file not found. Received: model={args.model!r}; give "
            "the path of a model saved with model.save('name.keras')."
        )
    if args.format == "onnx" and args.quantization != "none":
        _usage(
            "--quantization applies to TFLite only. Received: "
            f"--quantization {args.quantization} with --format onnx; drop "
            "--quantization or use --format tflite."
        )
    if args.quantization == "int8" and not args.representative_data:
        _usage(
            "--quantization int8 needs --representative-data (a .npy or "
            ".npz of a few hundred typical inputs) to calibrate activation "
            "ranges. Received: no --representative-data; add "
            "--representative-data calib.npy."
        )
    if args.int8_io and args.quantization != "int8":
        _usage(
            "--int8-io needs --quantization int8. Received: --quantization "
            f"{args.quantization}; add --quantization int8 or drop --int8-io."
        )
    if args.num_samples is not None and args.num_samples < 1:
        _usage(
            "--num-samples must be >= 1. Received: "
            f"--num-samples {args.num_samples}; e.g. --num-samples 200."
        )
    if args.tolerance is not None and not args.tolerance > 0:
        _usage(
            f"--tolerance must be > 0. Received: --tolerance {args.tolerance}"
            "; e.g. --tolerance 0.2."
        )
    if not 0 <= args.min_top1_agreement <= 1:
        _usage(
            "--min-top1-agreement must be in [0, 1]. Received: "
            f"--min-top1-agreement {args.min_top1_agreement}; e.g. 0.8."
        )
    # Fail on an unwritable output before loading and converting anything.
    suffix = ".tflite" if args.format == "tflite" else ".onnx"
    _common.check_output_path(args.output, suffix, arg_name="--output")
    data = None
    if args.representative_data:
        data = load_array(args.representative_data)
        if args.num_samples:
            data = data[: args.num_samples]

    model = _common.load_model_file(args.model, arg_name="model")

    if args.format == "onnx":
        from keras_neuronprune.export.onnx_export import onnx

        return onnx(
            model,
            args.output,
            opset=args.opset,
            batch_size=args.batch_size,
            parity_data=data,
            tolerance=args.tolerance,
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
        tolerance=args.tolerance,
        min_top1_agreement=args.min_top1_agreement,
        verbose=0 if getattr(args, "quiet", False) else 1,
    )


def load_array(path):
    """Loads samples from a .npy or .npz file (see `--representative-data`)."""
    if not os.path.isfile(path):
        raise ValueError(
            "--representative-data file not found. Received: "
            f"--representative-data {path!r}; give a .npy or .npz file."
        )
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(
            "--representative-data is not a readable .npy/.npz array file "
            f"({' '.join(str(e).split())[:200]}). Received: "
            f"--representative-data {path!r}; save it with numpy.save."
        ) from e
    if isinstance(loaded, np.ndarray):
        return loaded
    keys = list(loaded.keys())
    for key in ("x", "x_train", "x_test", "images"):
        if key in keys:
            return loaded[key]
    if len(keys) == 1:
        return loaded[keys[0]]
    raise ValueError(
        "--representative-data: cannot tell which array of the .npz holds "
        f"the samples. Received keys: {keys}; name it 'x'."
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
