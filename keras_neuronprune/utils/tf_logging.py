"""Quiet TensorFlow: its C++ start-up lines, absl logs and converter output.

TensorFlow 2.21 writes to file descriptor 2 from C++ (absl) when it is
imported, when it first creates a device (the CUDA probe) and while the
TFLite converter runs (MLIR passes). `TF_CPP_MIN_LOG_LEVEL` silences only
part of it, so this module also redirects the descriptor itself around
those steps. It imports neither keras nor tensorflow at import time, so it
can run before them.

Set `KERAS_NEURONPRUNE_VERBOSE=1` (or pass `--verbose` on the command
line) to see everything.
"""

import contextlib
import logging
import os
import sys
import tempfile

VERBOSE_ENV = "KERAS_NEURONPRUNE_VERBOSE"

# Errors only from TensorFlow's own C++ logging.
_ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def is_verbose():
    """Whether `KERAS_NEURONPRUNE_VERBOSE` asks for TensorFlow's logs."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in (
        "1",
        "true",
        "yes",
    )


def set_verbose(verbose):
    """Records the verbosity for this process (and its child processes).

    Args:
        verbose: True shows TensorFlow's C++ and converter logs.
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


class _Captured:
    """What a `silenced_stderr` block wrote to descriptor 2."""

    def __init__(self):
        self.text = ""


@contextlib.contextmanager
def silenced_stderr(enabled=True):
    """Redirects file descriptor 2 (C++ and Python stderr) while active.

    Python-level `sys.stderr` is flushed first; what was written is kept on
    the yielded object's `text`, so a caller may show it when the block
    fails.

    Args:
        enabled: False makes this a no-op (the verbose path).

    Yields:
        An object whose `text` holds the captured output after the block.

    Example:

    ```python
    with silenced_stderr() as captured:
        converter.convert()
    ```
    """
    captured = _Captured()
    if not enabled:
        yield captured
        return
    # C++ writes to descriptor 2 whatever `sys.stderr` currently is.
    fd = 2
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield captured
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def quiet_tensorflow(verbose=None):
    """Silences TensorFlow's start-up and Python-side logging.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it, imports
    TensorFlow and creates its devices with descriptor 2 redirected (the
    absl and CUDA-probe lines), and lowers the `tensorflow` and `absl`
    Python loggers to errors. Does nothing when `verbose` (default: the
    `KERAS_NEURONPRUNE_VERBOSE` environment variable) is true. Safe to call
    more than once; a real import error is raised with its captured output.

    Args:
        verbose: True leaves every log on; None reads the environment.
    """
    if verbose is None:
        verbose = is_verbose()
    if verbose:
        return
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    with silenced_stderr() as captured:
        try:
            import tensorflow as tf

            # The first device creation probes CUDA and logs its result.
            tf.config.list_logical_devices()
        except ImportError:
            failed = True
        else:
            failed = False
    if failed:
        sys.stderr.write(captured.text)
        raise ImportError("TensorFlow could not be imported (output above).")
    for name in ("tensorflow", "absl", "h5py", "tf2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
