"""The gradient helper on JAX and PyTorch agrees with NumPy formulas."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SCRIPT = r"""
import json, sys
import numpy as np
import keras
from keras_neuronprune.utils import activations_and_gradients
from keras_neuronprune.utils import gradient_and_hessian_vector_product
from keras_neuronprune.utils import loss_and_gradients

rng = np.random.default_rng(0)
w1 = rng.normal(size=(3, 4)).astype("float32")
w2 = rng.normal(size=(4, 2)).astype("float32")
inputs = keras.Input((3,))
h = keras.layers.Dense(4, activation="tanh", name="hidden")(inputs)
out = keras.layers.Dense(2, name="out")(h)
model = keras.Model(inputs, out)
model.get_layer("hidden").set_weights([w1, np.zeros(4, "float32")])
model.get_layer("out").set_weights([w2, np.zeros(2, "float32")])
x = rng.normal(size=(5, 3)).astype("float32")
y = rng.normal(size=(5, 2)).astype("float32")
value, grads = loss_and_gradients(model, None, x, y, "mse")
acts, agrads = activations_and_gradients(model, ["hidden"], x, y, "mse")
vectors = [np.ones(v.shape, "float32") for v in model.trainable_variables]
res = {"backend": keras.backend.backend(), "value": value,
       "grads": [g.tolist() for g in grads],
       "act": acts["hidden"].tolist(), "act_grad": agrads["hidden"].tolist()}
for gn in (False, True):
    _, _, hv = gradient_and_hessian_vector_product(
        model, None, vectors, x, y, "mse", gauss_newton=gn)
    res["hv_gn" if gn else "hv"] = [h.tolist() for h in hv]
res.update(w=[w1.tolist(), w2.tolist()], x=x.tolist(), y=y.tolist())
json.dump(res, open(sys.argv[1], "w"))
"""


def _run(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"backend {backend!r} is not installed")
    out = tmp_path / "out.json"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _reference(w1, w2, x, y):
    """Loss, weight gradients and activation gradient of tanh MLP (NumPy)."""
    a = x @ w1
    h = np.tanh(a)
    z = h @ w2
    dz = 2.0 * (z - y) / z.size
    dh = dz @ w2.T
    da = dh * (1 - h**2)
    grads = [x.T @ da, da.sum(0), h.T @ dz, dz.sum(0)]
    return float(np.mean((z - y) ** 2)), grads, h, dh


def _fd_hvp(w1, w2, x, y, eps=1e-4):
    """Exact H v (v = ones) by central differences of the gradient."""
    shapes = [(3, 4), (4,), (4, 2), (2,)]

    def grad(params):
        w1_, b1, w2_, b2 = params
        h = np.tanh(x @ w1_ + b1)
        z = h @ w2_ + b2
        dz = 2.0 * (z - y) / z.size
        da = (dz @ w2_.T) * (1 - h**2)
        return [x.T @ da, da.sum(0), h.T @ dz, dz.sum(0)]

    base = [w1, np.zeros(4), w2, np.zeros(2)]
    plus = grad([p + eps * np.ones(s) for p, s in zip(base, shapes)])
    minus = grad([p - eps * np.ones(s) for p, s in zip(base, shapes)])
    return [(a - b) / (2 * eps) for a, b in zip(plus, minus)]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_gradients_match_numpy(backend, tmp_path):
    r = _run(backend, tmp_path)
    assert r["backend"] == backend
    w1, w2 = (np.asarray(w, "float64") for w in r["w"])
    x, y = np.asarray(r["x"], "float64"), np.asarray(r["y"], "float64")
    value, grads, h, dh = _reference(w1, w2, x, y)
    np.testing.assert_allclose(r["value"], value, rtol=1e-5)
    for got, want in zip(r["grads"], grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r["act"], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["act_grad"], dh, rtol=1e-4, atol=1e-6)
    for got, want in zip(r["hv"], _fd_hvp(w1, w2, x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    # Gauss-Newton differs from the Hessian through the tanh layer.
    flat = np.concatenate([np.ravel(h) for h in r["hv_gn"]])
    assert not np.allclose(
        flat, np.concatenate([np.ravel(h) for h in r["hv"]]), rtol=1e-3
    )
    # J^T J v * 2/size for mse, checked against the explicit Jacobian.
    shapes = [(3, 4), (4,), (4, 2), (2,)]
    base = np.concatenate(
        [np.ravel(w1), np.zeros(4), np.ravel(w2), np.zeros(2)]
    )

    def outputs(theta):
        parts, start = [], 0
        for s in shapes:
            n = int(np.prod(s))
            parts.append(theta[start : start + n].reshape(s))
            start += n
        w1_, b1, w2_, b2 = parts
        return (np.tanh(x @ w1_ + b1) @ w2_ + b2).ravel()

    eps = 1e-6
    jac = np.stack(
        [
            (outputs(base + eps * e) - outputs(base - eps * e)) / (2 * eps)
            for e in np.eye(base.size)
        ],
        axis=1,
    )
    gn = jac.T @ jac @ np.ones(base.size) * (2.0 / (x.shape[0] * 2))
    np.testing.assert_allclose(flat, gn, rtol=1e-3, atol=1e-4)


def test_check_backend_support_refuses_only_autodiff_free_backends():
    from keras_neuronprune.utils.gradients import check_backend_support

    for backend in ("tensorflow", "jax", "torch"):
        check_backend_support("taylor", backend=backend)
    check_backend_support("l1", backend="numpy")
    with pytest.raises(ValueError, match="'taylor'.*'numpy'.*KERAS_BACKEND"):
        check_backend_support("taylor", backend="numpy")
    with pytest.raises(ValueError, match="'sosp'.*'openvino'"):
        check_backend_support("sosp", backend="openvino")
