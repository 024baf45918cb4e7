"""Checks and data plumbing shared by the TFLite and ONNX exporters."""

import importlib
import os
import re
import tempfile

import numpy as np


def check_backend(function_name):
    """Refuses export on a backend other than TensorFlow, with the fix.

    The converters (TFLite, tf2onnx) and the parity runs work on TensorFlow
    graphs; a JAX or PyTorch model fails deep inside them.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"`{function_name}` needs the TensorFlow backend; this process "
            f"runs Keras on {backend!r}. Save the model "
            "(`model.save('model.keras')`) and export it from a process "
            "started with KERAS_BACKEND=tensorflow, e.g. `KERAS_BACKEND="
            "tensorflow keras-neuronprune export model.keras --format tflite`."
        )


def check_output_path(path, suffix, arg_name="path"):
    """Fails early (before any conversion) when `path` cannot be written.

    Creates missing parent directories. Returns the absolute path as str.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{arg_name}` must be a file path (str or os.PathLike). "
            f"Received: {arg_name}={path!r}"
        )
    path = os.path.abspath(os.fspath(path))
    if not path.endswith(suffix):
        raise ValueError(
            f"`{arg_name}` must end with '{suffix}'. Received: "
            f"{arg_name}={path!r}"
        )
    if os.path.isdir(path):
        raise ValueError(
            f"`{arg_name}` is a directory, not a file path. Received: "
            f"{arg_name}={path!r}"
        )
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"Cannot create the directory of `{arg_name}` ({e}). Received: "
            f"{arg_name}={path!r}"
        ) from e
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(
            f"`{arg_name}` exists and is not writable. Received: "
            f"{arg_name}={path!r}"
        )
    # os.access is unreliable for directories on some file systems (and
    # always true for root), so really create a file next to the target.
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".knp_probe_"):
            pass
    except OSError as e:
        raise ValueError(
            f"Cannot write to the directory of `{arg_name}` ({e}). "
            f"Received: {arg_name}={path!r}"
        ) from e
    return path


def prepare_model(model, input_shape=None, function="export"):
    """Returns `(plain_keras_model, stripped)`.

    A `keras_neuronprune.core.PrunedModel` still carries pruning layers, so
    it is stripped first with `model.controller.strip(model)`; the exported
    artifact and the parity reference are the stripped model. Undefined
    input axes are then fixed (`core.surgery.with_static_inputs`, with the
    caller's `input_shape` and public `function` name for its errors).
    """
    import keras

    from keras_neuronprune.core.pruned_model import PrunedModel

    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    stripped = False
    if isinstance(model, PrunedModel):
        if model.controller is None:
            raise ValueError(
                "`model` is a keras_neuronprune PrunedModel without a "
                "controller, so its pruning layers cannot be stripped. "
                "Export the model returned by `controller.strip(model)` "
                f"instead. Received: model={model.name!r}"
            )
        try:
            model = model.controller.strip(model)
        except NotImplementedError as e:
            raise ValueError(
                "`model` is a keras_neuronprune PrunedModel whose controller "
                f"({type(model.controller).__name__}) cannot strip it; "
                "export a plain Keras model instead. Received: "
                f"model={model.name!r}"
            ) from e
        stripped = True
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "`model` has no defined inputs; build it with keras.Input(...) "
            "(or call it on data) before exporting. Received: "
            f"model={model.name!r}"
        )
    # Undefined (None) axes are fixed from `input_shape` or defaults: the
    # exported file and its parity inputs need concrete shapes.
    from keras_neuronprune.core.surgery import with_static_inputs

    model = with_static_inputs(model, input_shape, function)
    return model, stripped


def input_names(model):
    """Unique, identifier-safe names for the model inputs (export order)."""
    names = []
    for i, t in enumerate(model.inputs):
        name = re.sub(r"[^0-9A-Za-z_]", "_", getattr(t, "name", "") or "")
        if not name or name[0].isdigit():
            name = f"input_{i}"
        while name in names:
            name = f"{name}_{i}"
        names.append(name)
    return names


def input_signature(model, batch_size):
    """Keras `InputSpec`s for `model.export`, with a fixed or free batch."""
    import keras

    specs = [
        keras.InputSpec(
            shape=(batch_size,) + tuple(t.shape[1:]),
            dtype=t.dtype,
            name=name,
        )
        for t, name in zip(model.inputs, input_names(model))
    ]
    if len(specs) == 1:
        return specs
    return [specs]


def normalize_inputs(data, model, arg_name, max_samples=None):
    """Turns user data into a list of arrays, one per model input.

    Accepted forms: an array (single-input models), a list/tuple of arrays
    (one per input), a dict input-name -> array, or a callable / iterable
    that yields batches in one of these forms (TF's `representative_dataset`
    convention).
    """
    n_inputs = len(model.inputs)
    names = [t.name for t in model.inputs]

    def to_list(item):
        if isinstance(item, dict):
            missing = [n for n in names if n not in item]
            if missing:
                raise ValueError(
                    f"`{arg_name}` is missing inputs {missing}. Received "
                    f"keys: {sorted(item)}"
                )
            return [np.asarray(item[n]) for n in names]
        if isinstance(item, (list, tuple)):
            if len(item) != n_inputs:
                raise ValueError(
                    f"`{arg_name}` must give {n_inputs} input array(s) for "
                    f"this model. Received: {len(item)} arrays"
                )
            return [np.asarray(x) for x in item]
        arr = np.asarray(item)
        if n_inputs != 1:
            raise ValueError(
                f"This model has {n_inputs} inputs; pass `{arg_name}` as a "
                "list or dict of arrays. Received: a single array"
            )
        return [arr]

    if callable(data) and not isinstance(data, np.ndarray):
        data = data()
    if isinstance(data, (np.ndarray, list, tuple, dict)) and not (
        isinstance(data, (list, tuple))
        and data
        and isinstance(data[0], (list, tuple, dict))
    ):
        arrays = to_list(data)
    else:
        try:
            batches = [to_list(item) for item in data]
        except TypeError as e:
            raise TypeError(
                f"`{arg_name}` must be an array, a list/dict of arrays, or a "
                "callable/iterable yielding them. Received: "
                f"{arg_name} of type {type(data).__name__}"
            ) from e
        if not batches:
            raise ValueError(f"`{arg_name}` yielded no samples.")
        arrays = [
            np.concatenate([b[i] for b in batches], axis=0)
            for i in range(n_inputs)
        ]
    out = []
    for arr, t in zip(arrays, model.inputs):
        expected = tuple(t.shape[1:])
        if arr.ndim == len(expected):
            arr = arr[None]
        if tuple(arr.shape[1:]) != expected:
            raise ValueError(
                f"`{arg_name}` samples for input {t.name!r} must have shape "
                f"(N,) + {expected}. Received: shape {arr.shape}"
            )
        if np.issubdtype(np.dtype(t.dtype), np.floating):
            arr = arr.astype(np.float32)
        else:
            arr = arr.astype(np.dtype(t.dtype))
        out.append(arr)
    n = out[0].shape[0]
    if n == 0 or any(a.shape[0] != n for a in out):
        raise ValueError(
            f"`{arg_name}` must hold the same number (> 0) of samples for "
            f"every input. Received: {[a.shape[0] for a in out]}"
        )
    if max_samples is not None and n > max_samples:
        out = [a[:max_samples] for a in out]
    return out


def import_litert(module, purpose):
    """Imports `ai_edge_litert.<module>`, or says how to install it.

    Args:
        module: the submodule, e.g. "interpreter".
        purpose: what needs it, opening the error message ("Reading
            .tflite files").

    Raises:
        ImportError: when `ai-edge-litert` is not installed.
    """
    try:
        return importlib.import_module(f"ai_edge_litert.{module}")
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            f"{purpose} needs the `ai-edge-litert` package: "
            "pip install ai-edge-litert"
        ) from e


def check_batch_size(batch_size):
    """Checks an exported batch size: a positive int, or None (dynamic)."""
    if batch_size is not None and (
        not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(
            "`batch_size` must be a positive int or None. Received: "
            f"batch_size={batch_size!r}"
        )
    return batch_size


def parity_inputs(model, parity_data, parity_samples):
    """The parity-check inputs (list of arrays) and their label.

    `parity_data` when given (validated against the model's inputs), else
    `parity_samples` seeded random samples.
    """
    if parity_data is not None:
        inputs = normalize_inputs(parity_data, model, "parity_data")
        return inputs, "parity_data"
    return random_inputs(model, parity_samples), "random"


def random_inputs(model, num_samples, seed=0):
    """Seeded random inputs (normal for floats, 0/1 for integers), one
    array per model input (see `core.surgery.random_inputs`)."""
    from keras_neuronprune.core.surgery import random_inputs as _random

    return _random(model, batch_size=num_samples, seed=seed, int_high=2)


def keras_outputs(model, inputs, batch_size=32):
    """Runs the Keras model (inference mode); returns a list of arrays."""
    import keras

    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = None
    n = inputs[0].shape[0]
    chunks = []
    for start in range(0, n, batch_size):
        batch = [a[start : start + batch_size] for a in inputs]
        if structure is not None:
            # Feed the structure the model was built with (a single tensor
            # or a list), which avoids Keras' structure-mismatch warning.
            feed = keras.tree.pack_sequence_as(structure, batch)
        else:
            feed = batch[0] if len(batch) == 1 else batch
        out = model(feed, training=False)
        flat = keras.tree.flatten(out)
        chunks.append([keras.ops.convert_to_numpy(o) for o in flat])
    return [
        np.concatenate([c[i] for c in chunks], axis=0)
        for i in range(len(chunks[0]))
    ]


class ModelFileError(RuntimeError):
    """A model file exists but cannot be read (corrupt, truncated, wrong
    format). Not an argument error: the command line exits with 1."""


def load_model_file(path, arg_name="model"):
    """Loads a saved Keras model, telling a corrupt file from a missing one.

    Keras reports a truncated `.keras` archive as "File not found", which
    misleads for a file that exists, so the archive is checked first.

    Args:
        path: a `.keras` file (a zip archive holding `config.json`) or a
            legacy `.h5` file.
        arg_name: argument name used in messages.

    Returns:
        The loaded `keras.Model` (not compiled).

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: `path` is a directory or has an unknown suffix.
        ModelFileError: the file exists but is corrupt or truncated.
    """
    import zipfile

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"`{arg_name}` file not found. Received: {arg_name}={path!r}; "
            "give the path of a model saved with model.save('name.keras')."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"`{arg_name}` is a directory, not a .keras file. Received: "
            f"{arg_name}={path!r}"
        )
    if not path.endswith((".keras", ".h5", ".hdf5")):
        raise ValueError(
            f"`{arg_name}` must be a .keras (or legacy .h5) file. Received: "
            f"{arg_name}={path!r}"
        )
    size = os.path.getsize(path)
    if path.endswith(".keras"):
        problem = None
        if not zipfile.is_zipfile(path):
            problem = "it is not a zip archive"
        else:
            try:
                with zipfile.ZipFile(path) as archive:
                    names = archive.namelist()
                    bad = archive.testzip()
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                names, bad, problem = [], None, str(e)
            if problem is None and bad is not None:
                problem = f"member {bad!r} fails its CRC check"
            if problem is None and "config.json" not in names:
                problem = "it holds no config.json"
        if problem is not None:
            raise ModelFileError(
                f"`{arg_name}` is not a valid .keras file ({problem}; "
                f"{size:,} bytes): it is corrupt or truncated. Received: "
                f"{arg_name}={path!r}; save the model again with "
                "model.save(path)."
            )
    import keras

    try:  # registers keras_neuronprune layers for deserialization
        import keras_neuronprune  # noqa: F401
    except ImportError:
        pass
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(
            f"`{arg_name}` could not be loaded ({type(e).__name__}: "
            f"{first[:300]}). Received: {arg_name}={path!r}"
        ) from e
