"""prune -> fit -> strip -> save/load for every criterion on every backend.

Keras fixes its backend at import, so each backend runs in one subprocess
(`flow_driver.py`, all criteria batched) with KERAS_BACKEND set; a backend
whose package is not installed is skipped.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from keras_neuronprune import criteria

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def all_criteria():
    names = set(criteria.ALL_OBJECTS) | set(criteria._LAZY_MODULES)
    # Aliases of the same class run once.
    return sorted(names - {"l1_gamma", "network_slimming"})


def run_backend(backend, names, tmp_path, timeout=600):
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"backend {backend!r} is not installed")
    out = tmp_path / f"{backend}.json"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "flow_driver.py"), str(out)]
        + list(names),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend_results(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    return run_backend(request.param, all_criteria(), tmp)


def test_every_criterion_runs_the_whole_flow(backend_results):
    backend = backend_results["backend"]
    failures = {
        name: record["error"]
        for name, record in backend_results["criteria"].items()
        if not record["ok"]
    }
    assert not failures, f"{backend}: {failures}"
    for name, record in backend_results["criteria"].items():
        # The schedule ran inside fit (4 steps), pruned, and the stripped,
        # saved and reloaded models compute what the masked model does.
        assert record["step"] == 4, (backend, name)
        assert record["params_after"] < record["params_before"], name
        assert record["stripped_vs_pruned"] < 1e-4, (backend, name)
        assert record["loaded_vs_pruned"] < 1e-5, (backend, name)
        assert record["final_loaded_vs_final"] < 1e-6, (backend, name)
        assert record["loaded_has_controller"], (backend, name)
    assert set(backend_results["criteria"]) == set(all_criteria())
