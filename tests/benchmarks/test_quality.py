"""Tests of `python -m benchmarks.quality` (`--quick`; no real data)."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from benchmarks.quality import data as data_lib
from benchmarks.quality import methods as methods_lib
from benchmarks.quality import training
from benchmarks.quality.cli import main

# Every method at one FLOPs target keeps this close a fraction of the
# dense FLOPs (uniform shrinking can only hit the counts its channel
# granularity allows).
FLOPS_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    results = str(tmp_path_factory.mktemp("quality"))
    return results, main(["--quick", "--quiet", "--results-dir", results])


def _rows(results):
    with open(os.path.join(results, "results.json")) as f:
        return json.load(f)["runs"]


def test_quick_writes_every_output(quick_run):
    results, status = quick_run
    assert status == 0
    for name in ("results.json", "results.csv", "results.md", "pareto.png"):
        path = os.path.join(results, name)
        assert os.path.getsize(path) > 0, name
    rows = _rows(results)
    methods = {"l1", "rni", "taylor", "uniform", "scratch"}
    assert {r["method"] for r in rows} == methods
    assert {r["target"] for r in rows} == {"2x"}
    assert len(rows) == len(methods)
    for row in rows:
        assert 0.0 <= row["acc_final"] <= 1.0
        assert 0 < row["flops_kept"] < 1.0
        assert row["cpu_s"] > 0
        if row["method"] != "scratch":
            assert 0.0 <= row["acc_pruned"] <= 1.0
    # Regularised methods train E_reg epochs before pruning, the others
    # fine-tune the same total.
    rni = next(r for r in rows if r["method"] == "rni")
    l1 = next(r for r in rows if r["method"] == "l1")
    assert rni["epochs_reg"] + rni["epochs_ft"] == l1["epochs_ft"] == 2
    assert rni["acc_before_mask"] is not None
    with open(os.path.join(results, "results.csv")) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    text = open(os.path.join(results, "results.md")).read()
    assert "Training budget" in text and "| 2x | l1 |" in text
    plots = [n for n in os.listdir(results) if n.startswith("rni_importan")]
    assert len(plots) == 1


def test_same_flops_budget_at_a_flops_target(quick_run):
    rows = [r for r in _rows(quick_run[0]) if r["target"] == "2x"]
    assert rows
    for row in rows:
        assert abs(row["flops_kept"] - 0.5) <= FLOPS_TOLERANCE, row["method"]


def test_resume_skips_finished_runs(quick_run, capsys):
    results, _ = quick_run
    before = {r["run_key"]: r["wall_s"] for r in _rows(results)}
    assert main(["--quick", "--results-dir", results]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    runs = [line for line in out if "seed 0  FLOPs" in line]
    assert len(runs) == len(before)
    assert all("skipped" in line for line in runs)
    assert "cache: hit" in out[0]
    after = {r["run_key"]: r["wall_s"] for r in _rows(results)}
    assert after == before


def _tiny(seed=0, units=3):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(units)(inputs))


def test_corrupted_dense_cache_is_rebuilt(tmp_path):
    calls = []

    def train(model):
        calls.append(1)
        return {"accuracy": 0.5, "wall_s": 0.0, "cpu_s": 0.0}

    config = {"model": "tiny", "seed": 0}
    cache = str(tmp_path)
    _, meta = training.load_or_train_dense(config, _tiny, train, cache)
    assert meta["cache"] == "trained" and len(calls) == 1
    _, meta = training.load_or_train_dense(config, _tiny, train, cache)
    assert meta["cache"] == "hit" and len(calls) == 1
    path = meta["path"]
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    model, meta = training.load_or_train_dense(config, _tiny, train, cache)
    assert meta["cache"].startswith("rebuilt") and len(calls) == 2
    assert "file hash" in meta["cache"]
    assert training.file_sha256(path) == meta["sha256"]
    # A file that loads but does not match the architecture (hash updated
    # to match the file, so only the shape check can catch it).
    _tiny(units=5).save(path)
    meta_path = path[: -len(".keras")] + ".json"
    stored = json.load(open(meta_path))
    stored["sha256"] = training.file_sha256(path)
    json.dump(stored, open(meta_path, "w"))
    model, meta = training.load_or_train_dense(config, _tiny, train, cache)
    assert "weight shapes" in meta["cache"] and len(calls) == 3
    assert model.weights[0].shape == (4, 3)


def test_missing_data_path_is_one_clear_line(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    status = main(["--dataset", "cifar10", "--data-dir", missing])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert missing in err[0] and "--data-dir" in err[0]
    assert "cifar10-jpeg.tar" in err[0]


def test_fashion_mnist_loader_and_subset(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(
        folder / "fashion_mnist.npz",
        x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        y_train=np.arange(60) % 10,
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=np.arange(20) % 10,
    )
    x, y, xt, yt = data_lib.load_dataset(
        "fashion-mnist", str(tmp_path), train_subset=30
    )
    assert x.shape == (30, 28, 28, 1) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [3] * 10
    assert xt.shape == (20, 28, 28, 1) and 0.0 <= x.min() <= x.max() <= 1.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2x", ("flops", 0.5)),
        ("4x", ("flops", 0.25)),
        ("ch90", ("channels", 0.9)),
    ],
)
def test_parse_target(text, expected):
    kind, value = methods_lib.parse_target(text)
    assert kind == expected[0] and value == pytest.approx(expected[1])


def test_bad_target_names_the_value():
    with pytest.raises(ValueError, match="Received: '1x'"):
        methods_lib.parse_target("1x")
