"""`onnx(model, path, opset=...)`: export to ONNX, checked with onnxruntime."""

import os
import tempfile

from keras_neuronprune.export import _common
from keras_neuronprune.export.export_parity_error import ExportParityError
from keras_neuronprune.export.export_result import ExportResult
from keras_neuronprune.export.parity_check import ParityCheck
from keras_neuronprune.utils import tf_logging

DEFAULT_OPSET = 17


def onnx(
    model,
    path,
    opset=DEFAULT_OPSET,
    *,
    batch_size=None,
    input_shape=None,
    parity_data=None,
    parity_samples=4,
    tolerance=None,
):
    """Exports a Keras model to ONNX and checks it against onnxruntime.

    Uses Keras' own `model.export(path, format="onnx")` (tf2onnx
    `from_function` with Keras' numpy-2 patch), which works for functional
    and Sequential models alike; `tf2onnx.convert.from_keras` fails on Keras
    3 Sequential models. The graph is validated with `onnx.checker` and run
    in onnxruntime (CPU); the max |onnx - keras| must stay within
    `tolerance` (default 1e-4) x max(1, max |keras output|), otherwise
    `ExportParityError` is raised and nothing is written to `path`.

    A `keras_neuronprune` `PrunedModel` is stripped first with
    `model.controller.strip(model)`.

    Args:
        model: a built Keras model with float32 dtype policy.
        path: output file, must end with ".onnx"; checked for writability
            before any conversion work.
        opset: ONNX opset version (tf2onnx 1.17 supports up to 18).
        batch_size: fixed batch dimension, or None (default) for a dynamic
            batch axis.
        input_shape: concrete shape (without the batch axis) for inputs
            with undefined axes (e.g. keras-hub's `image_shape=(None, None,
            3)` or a text model's `None` sequence length): one tuple, a
            list (one per input) or a dict input name -> tuple. The
            exported file takes inputs of this shape and the parity check
            runs at it. Default: 224 for image sides, 128 for sequence
            axes; an input with no sensible default raises a ValueError
            asking for `input_shape`.
        parity_data: samples for the parity check (array, list or dict of
            arrays); default `parity_samples` seeded random normal inputs.
        parity_samples: number of random samples when no data is given.
        tolerance: overrides the parity bound.

    Returns:
        `ExportResult` (format "onnx", with `opset` and `parity`).

    Raises:
        ValueError: bad arguments or unwritable path.
        ExportParityError: onnxruntime does not reproduce the Keras model.

    Example:

    ```python
    result = keras_neuronprune.export.onnx(model, "model.onnx", opset=17)
    print(result.parity)
    ```
    """
    _common.check_backend("export.onnx")
    _check_arguments(opset, batch_size)
    path = _common.check_output_path(path, ".onnx")
    model, stripped = _common.prepare_model(model, input_shape, "export.onnx")
    policy = getattr(getattr(model, "dtype_policy", None), "name", "float32")
    if policy != "float32":
        raise ValueError(
            "ONNX export with the TensorFlow backend needs a float32 dtype "
            f"policy. Received: model with dtype policy {policy!r}"
        )
    check_inputs, data_label = _parity_inputs(
        model, parity_data, parity_samples, batch_size
    )

    import onnx as onnx_lib
    import onnxruntime

    signature = _common.input_signature(model, batch_size)
    directory = os.path.dirname(path)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".knp_") as tmp:
        tmp_path = os.path.join(tmp, "model.onnx")
        _convert(model, tmp_path, signature, opset)
        proto = onnx_lib.load(tmp_path)
        onnx_lib.checker.check_model(proto)
        session = onnxruntime.InferenceSession(
            tmp_path, providers=["CPUExecutionProvider"]
        )
        exported = _run_session(
            session, _common.input_names(model), check_inputs, batch_size
        )
        reference = _common.keras_outputs(model, check_inputs)
        parity = ParityCheck.compare(
            reference, exported, "onnx", tolerance=tolerance, data=data_label
        )
        if not parity.passed:
            raise ExportParityError(
                "The ONNX export does not reproduce the Keras model in "
                f"onnxruntime: {parity}. Nothing was written to {path!r}. "
                "If the difference is acceptable, relax `tolerance` (now "
                f"{tolerance or 1e-4:g}).",
                parity=parity,
            )
        opset_used = max(
            (
                o.version
                for o in proto.opset_import
                if o.domain in ("", "ai.onnx")
            ),
            default=opset,
        )
        input_details = _details(session.get_inputs())
        output_details = _details(session.get_outputs())
        del session
        os.replace(tmp_path, path)
    return ExportResult(
        format="onnx",
        path=path,
        size_bytes=os.path.getsize(path),
        parity=parity,
        stripped=stripped,
        opset=int(opset_used),
        input_details=input_details,
        output_details=output_details,
    )


def _check_arguments(opset, batch_size):
    if (
        not isinstance(opset, int)
        or isinstance(opset, bool)
        or not (7 <= opset <= 18)
    ):
        raise ValueError(
            "`opset` must be an int in [7, 18] (the range tf2onnx 1.17 "
            f"supports). Received: opset={opset!r}"
        )
    _common.check_batch_size(batch_size)


def _parity_inputs(model, parity_data, parity_samples, batch_size):
    """The parity-check inputs (list of arrays) and their label."""
    check_inputs, data_label = _common.parity_inputs(
        model, parity_data, parity_samples
    )
    if batch_size is not None:
        check_inputs = [a[:batch_size] for a in check_inputs]
        if check_inputs[0].shape[0] < batch_size:
            check_inputs = _common.random_inputs(model, batch_size)
            data_label = "random"
    return check_inputs, data_label


def _convert(model, tmp_path, signature, opset):
    """Runs Keras' ONNX export; a failure carries the converter's log."""
    quiet = not tf_logging.is_verbose()
    try:
        with tf_logging.silenced_stderr(quiet) as captured:
            model.export(
                tmp_path,
                format="onnx",
                input_signature=signature,
                opset_version=opset,
                verbose=False,
            )
    except Exception as e:
        lines = [x for x in captured.text.splitlines() if x.strip()]
        log = "\n".join(lines[-8:])
        raise RuntimeError(
            f"ONNX conversion failed: {type(e).__name__}: {e}"
            + (f"\nConverter log (last lines):\n{log}" if log else "")
        ) from e


def _run_session(session, names, check_inputs, batch_size):
    """Runs `check_inputs` through onnxruntime, `batch_size` at a time."""
    import numpy as np

    sess_inputs = session.get_inputs()
    by_name = {i.name: i for i in sess_inputs}
    if all(n in by_name for n in names):
        feed_names = names
    else:
        # Fall back to graph order (tf2onnx keeps the signature order).
        feed_names = [i.name for i in sess_inputs]
    step = batch_size or check_inputs[0].shape[0]
    chunks = []
    for start in range(0, check_inputs[0].shape[0], step):
        feed = {
            n: a[start : start + step] for n, a in zip(feed_names, check_inputs)
        }
        chunks.append(session.run(None, feed))
    return [
        np.concatenate([c[i] for c in chunks], axis=0)
        for i in range(len(chunks[0]))
    ]


def _details(nodes):
    return [
        {"name": n.name, "shape": list(n.shape), "dtype": n.type} for n in nodes
    ]
