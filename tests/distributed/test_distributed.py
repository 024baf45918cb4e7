"""Pruning under MirroredStrategy (TF) and DataParallel (JAX), 2 devices.

Each engine runs in a subprocess (logical devices and XLA_FLAGS must be set
before the backend starts): the masks, importances and pruning step are
identical on every replica, and the stripped model equals the one pruned on
a single device (same data, same seed).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _run(mode, backend, tmp_path, extra_env=None):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"backend {backend!r} is not installed")
    out = tmp_path / f"{mode}.json"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra_env or {})
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "dist_driver.py"), mode, str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _check(results):
    """Asserts replicas agree and the stripped model equals one device's."""
    assert results["replicas"] == 2
    assert set(results["criteria"]) == {"l1", "taylor"}
    for name, record in results["criteria"].items():
        assert record["replica_copies_checked"] > 0, name
        assert record["identical_across_replicas"], name
        assert record["same_kept_counts"], name
        assert record["pruning_step"] == 4, name
        assert record["max_abs_diff"] < 1e-4, (name, record)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    results = _run("mirrored", "tensorflow", tmp_path)
    _check(results)
    assert results["replicas"] == 2


def test_jax_data_parallel_on_two_host_devices(tmp_path):
    results = _run(
        "data_parallel",
        "jax",
        tmp_path,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    _check(results)
    assert results["replicas"] == 2
