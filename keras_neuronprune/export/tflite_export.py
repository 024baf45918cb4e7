"""`tflite(model, path, ...)`: export to a LiteRT (.tflite) file."""

import os
import tempfile

from keras_neuronprune.export import _common
from keras_neuronprune.export.export_parity_error import ExportParityError
from keras_neuronprune.export.export_result import ExportResult
from keras_neuronprune.export.gpu_compatibility_error import (
    GpuCompatibilityError,
)
from keras_neuronprune.export.parity_check import ParityCheck
from keras_neuronprune.utils import tf_logging

QUANTIZATIONS = (None, "float16", "dynamic", "int8")
_ALIASES = {"none": None, "float32": None, "fp32": None, "fp16": "float16"}


def tflite(
    model,
    path,
    quantization=None,
    representative_data=None,
    int8_io=False,
    require_gpu_compatible=False,
    *,
    batch_size=1,
    input_shape=None,
    parity_data=None,
    parity_samples=4,
    tolerance=None,
    min_top1_agreement=0.9,
    max_parity_samples=256,
    allow_select_tf_ops=False,
    runtime_gpu_check=None,
    verbose=1,
):
    """Exports a Keras model to a .tflite file for LiteRT, checking parity.

    Conversion goes through Keras' own LiteRT exporter
    (`model.export(path, format="litert")`, which is ExportArchive ->
    SavedModel -> `TFLiteConverter.from_saved_model`). The file is written
    next to `path` first and only moved into place once the parity check
    (and, if asked, the GPU check) passed, so a failed export never leaves a
    file behind.

    Parity is checked on every export by running the .tflite in the LiteRT
    interpreter (`ai_edge_litert.interpreter.Interpreter`) and comparing
    with the Keras model:

    - float32: max |tflite - keras| <= `tolerance` (default 1e-4) x
      max(1, max |keras output|);
    - float16: the same with default tolerance 2e-2;
    - dynamic / int8: max |tflite - keras| relative to the output range (1
      for probabilities) <= `tolerance` (default 0.1) and, for
      classifiers, top-1 agreement >= `min_top1_agreement` on the samples
      where the Keras model is confident (see `ParityCheck`).

    TensorFlow's converter logs are silenced unless the
    `KERAS_NEURONPRUNE_VERBOSE` environment variable is set (the command
    line's `--verbose`); when the conversion fails they are attached to the
    error.

    A `keras_neuronprune` `PrunedModel` (which still holds pruning layers)
    is stripped first with `model.controller.strip(model)`; the result says
    so in `stripped`.

    Args:
        model: a built Keras model (functional, Sequential or a
            `PrunedModel`). The user's model is not modified.
        path: output file, must end with ".tflite". Checked for
            writability before any conversion work.
        quantization: None (float32), "float16" (float16 weights),
            "dynamic" (int8 weights, float activations) or "int8" (full
            integer, calibrated on `representative_data`).
        representative_data: samples for int8 calibration (required for
            "int8"); also the parity data when given. An array (N, ...) for
            single-input models, a list or dict of arrays, or a callable
            yielding batches (TF's `representative_dataset` convention).
        int8_io: int8 inputs and outputs (only with quantization="int8").
        require_gpu_compatible: raise `GpuCompatibilityError` if any
            operator cannot run on the TFLite GPU delegate.
        batch_size: fixed batch dimension of the exported model (1, the
            mobile default, keeps the graph free of shape ops the GPU
            delegate rejects); None keeps it dynamic.
        input_shape: concrete shape (without the batch axis) for inputs
            with undefined axes (e.g. keras-hub's `image_shape=(None, None,
            3)` or a text model's `None` sequence length): one tuple, a
            list (one per input) or a dict input name -> tuple. The
            exported file takes inputs of this shape and the parity check
            runs at it. Default: 224 for image sides, 128 for sequence
            axes; an input with no sensible default raises a ValueError
            asking for `input_shape`.
        parity_data: samples for the parity check when no
            `representative_data` is given (default: seeded random
            normal inputs, `parity_samples` of them).
        parity_samples: number of random samples when no data is given.
        tolerance: overrides the parity bound (see above).
        min_top1_agreement: top-1 agreement bound for quantized
            classifiers (on the confidently classified samples).
        max_parity_samples: cap on the samples compared.
        allow_select_tf_ops: also allow TensorFlow (Flex) kernels. Off by
            default: Flex ops need the Flex delegate on device and do not
            run in the plain LiteRT interpreter or on the GPU.
        runtime_gpu_check: also run LiteRT's `CompiledModel` GPU check
            (skipped cleanly where no GPU backend exists). Default: only
            when `require_gpu_compatible`.
        verbose: 0 is silent; 1 (default) shows a progress bar while int8
            calibration runs over `representative_data`.

    Returns:
        `ExportResult` with the path, size, `ParityCheck` and
        `GpuCompatibilityReport`.

    Raises:
        ValueError: bad arguments (unknown quantization, int8 without
            representative data, `int8_io` without int8, unwritable path).
        ExportParityError: the .tflite does not reproduce the Keras model.
        GpuCompatibilityError: `require_gpu_compatible` and some operator
            cannot run on the GPU delegate (`err.report` lists them).

    Example:

    ```python
    result = keras_neuronprune.export.tflite(
        model, "model_int8.tflite", quantization="int8",
        representative_data=x_train[:200],
    )
    print(result.parity, result.gpu.compatible)
    ```
    """
    quantization = _check_quantization(quantization)
    _common.check_backend("export.tflite")
    _check_arguments(quantization, representative_data, int8_io, batch_size)
    path = _common.check_output_path(path, ".tflite")
    model, stripped = _common.prepare_model(model, input_shape, "export.tflite")

    rep = None
    if representative_data is not None:
        rep = _common.normalize_inputs(
            representative_data, model, "representative_data"
        )
    check_inputs, data_label = _parity_inputs(
        model, rep, parity_data, parity_samples
    )
    check_inputs = [a[:max_parity_samples] for a in check_inputs]

    converter_kwargs = _converter_kwargs(
        quantization, rep, int8_io, allow_select_tf_ops, verbose
    )
    names = _common.input_names(model)
    signature = _common.input_signature(model, batch_size)
    quiet = not tf_logging.is_verbose()

    directory = os.path.dirname(path)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".knp_") as tmp:
        tmp_path = os.path.join(tmp, "model.tflite")
        _convert(
            model,
            tmp_path,
            signature,
            converter_kwargs,
            quantization=quantization,
            allow_select_tf_ops=allow_select_tf_ops,
        )
        with open(tmp_path, "rb") as f:
            content = f.read()

        from keras_neuronprune.export._litert_runner import LiteRTRunner
        from keras_neuronprune.export._litert_runner import tensor_details

        gpu = _gpu_report(content, require_gpu_compatible, runtime_gpu_check)

        # LiteRT announces its XNNPACK delegate on stderr from C++.
        with tf_logging.silenced_stderr(quiet):
            runner = LiteRTRunner(content, names)
            exported = runner(check_inputs)
        reference = _common.keras_outputs(model, check_inputs)
        mode = quantization or "float32"
        parity = ParityCheck.compare(
            reference,
            exported,
            mode,
            tolerance=tolerance,
            min_top1_agreement=min_top1_agreement,
            data=data_label,
        )
        if not parity.passed:
            relax = relax_hint(parity, mode, tolerance, min_top1_agreement)
            raise ExportParityError(
                f"The {mode} .tflite export does not reproduce the Keras "
                f"model: {parity}. Nothing was written to {path!r}. If the "
                f"difference is acceptable, relax {relax}.",
                parity=parity,
            )
        os.replace(tmp_path, path)

    return ExportResult(
        format="tflite",
        path=path,
        size_bytes=os.path.getsize(path),
        parity=parity,
        quantization=quantization,
        gpu=gpu,
        stripped=stripped,
        int8_io=bool(int8_io),
        input_details=tensor_details(runner.input_details),
        output_details=tensor_details(runner.output_details),
    )


def _check_arguments(quantization, representative_data, int8_io, batch_size):
    if int8_io and quantization != "int8":
        raise ValueError(
            "`int8_io=True` needs quantization='int8'. Received: "
            f"quantization={quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' needs `representative_data` (a few hundred "
            "typical inputs) to calibrate activation ranges. Received: "
            "representative_data=None"
        )
    _common.check_batch_size(batch_size)


def _parity_inputs(model, rep, parity_data, parity_samples):
    """The parity-check inputs and their label: calibration data first."""
    if rep is not None:
        return rep, "representative_data"
    return _common.parity_inputs(model, parity_data, parity_samples)


def _convert(
    model,
    tmp_path,
    signature,
    converter_kwargs,
    *,
    quantization,
    allow_select_tf_ops,
):
    """Runs Keras' LiteRT export; a failure carries a hint and the log."""
    quiet = not tf_logging.is_verbose()
    try:
        with tf_logging.silenced_stderr(quiet) as captured:
            model.export(
                tmp_path,
                format="litert",
                input_signature=signature,
                verbose=False,
                **converter_kwargs,
            )
    except Exception as e:
        hint = ""
        if "TF Select" in str(e) and not allow_select_tf_ops:
            hint = (
                " Some operators have no TFLite builtin kernel; "
                "rewrite them with supported ops, or pass "
                "allow_select_tf_ops=True (Flex kernels need the Flex "
                "delegate on device and never run on the GPU)."
            )
        log = ""
        if captured.text.strip():
            log = "\nConverter log (last lines):\n" + _last_lines(captured.text)
        raise RuntimeError(
            f"TFLite conversion ({quantization or 'float32'}) failed: "
            f"{type(e).__name__}: {_first_lines(str(e))}.{hint}{log}"
        ) from e


def _gpu_report(content, require_gpu_compatible, runtime_gpu_check):
    """The GPU-delegate report; raises when the GPU is required and fails."""
    from keras_neuronprune.export.gpu_compatibility import (
        check_gpu_compatibility,
    )
    from keras_neuronprune.export.gpu_compatibility import (
        runtime_gpu_check as _runtime_gpu_check,
    )

    gpu = check_gpu_compatibility(content)
    if runtime_gpu_check or (
        runtime_gpu_check is None and require_gpu_compatible
    ):
        gpu.runtime = _runtime_gpu_check(content)
    runtime_partial = (
        gpu.runtime is not None
        and gpu.runtime["status"] == "partially_accelerated"
    )
    if require_gpu_compatible and (not gpu.compatible or runtime_partial):
        raise GpuCompatibilityError(
            "The exported model cannot run entirely on the TFLite GPU "
            f"delegate (require_gpu_compatible=True):\n{gpu}",
            report=gpu,
        )
    return gpu


def relax_hint(parity, mode, tolerance, min_top1_agreement):
    """Names the arguments (and their values) whose bound failed."""
    from keras_neuronprune.export.parity_check import FLOAT_TOLERANCE
    from keras_neuronprune.export.parity_check import QUANTIZED_TOLERANCE

    now = {
        "tolerance": tolerance
        or FLOAT_TOLERANCE.get(mode, QUANTIZED_TOLERANCE),
        "min_top1_agreement": min_top1_agreement,
    }
    return " or ".join(f"`{n}` (now {now[n]:g})" for n in parity.failed)


def _last_lines(text, n=8):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:])


def _first_lines(text, n=6):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:n])


def _check_quantization(quantization):
    if isinstance(quantization, str):
        key = quantization.lower()
        quantization = _ALIASES.get(key, key)
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            "`quantization` must be one of None, 'float16', 'dynamic', "
            f"'int8'. Received: quantization={quantization!r}"
        )
    return quantization


def _converter_kwargs(
    quantization, rep, int8_io, allow_select_tf_ops, verbose=0
):
    """TFLiteConverter attributes for `model.export(format="litert")`."""
    import tensorflow as tf

    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    kwargs = {}
    target_spec = {"supported_ops": ops}
    if quantization == "float16":
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
        target_spec["supported_types"] = [tf.float16]
    elif quantization == "dynamic":
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
        target_spec["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if allow_select_tf_ops:
            target_spec["supported_ops"].append(tf.lite.OpsSet.SELECT_TF_OPS)
        n = rep[0].shape[0]

        def representative_dataset():
            bar = None
            if verbose:
                import keras

                bar = keras.utils.Progbar(n, unit_name="calibration sample")
            for i in range(n):
                yield [a[i : i + 1] for a in rep]
                if bar is not None:
                    bar.update(i + 1)

        kwargs["representative_dataset"] = representative_dataset
        if int8_io:
            kwargs["inference_input_type"] = tf.int8
            kwargs["inference_output_type"] = tf.int8
    kwargs["target_spec"] = target_spec
    return kwargs
