"""`keras_neuronprune.utils.tf_logging`: quiet TensorFlow unless verbose."""

import os
import subprocess
import sys

from keras_neuronprune.utils import tf_logging

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_silenced_stderr_captures_file_descriptor_2(capfd):
    with tf_logging.silenced_stderr() as captured:
        os.write(2, b"from C++\n")
    assert captured.text == "from C++\n"
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_silenced_stderr_disabled_passes_through(capfd):
    with tf_logging.silenced_stderr(enabled=False) as captured:
        os.write(2, b"visible\n")
    assert captured.text == ""
    assert "visible" in capfd.readouterr().err


def test_verbose_switch(monkeypatch):
    monkeypatch.delenv(tf_logging.VERBOSE_ENV, raising=False)
    assert not tf_logging.is_verbose()
    tf_logging.set_verbose(True)
    assert tf_logging.is_verbose()
    tf_logging.set_verbose(False)
    assert not tf_logging.is_verbose()


def test_quiet_tensorflow_import_prints_nothing():
    # Loads the module by path, as the package's first import would, then
    # imports TensorFlow and runs an op: stderr stays empty.
    code = (
        "import importlib.util as u\n"
        f"s = u.spec_from_file_location('q', {ROOT!r} + "
        "'/keras_neuronprune/utils/tf_logging.py')\n"
        "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        "m.quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "print(int(tf.constant(2) + 1))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", tf_logging.VERBOSE_ENV)
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"
    assert proc.stderr.strip() == ""
