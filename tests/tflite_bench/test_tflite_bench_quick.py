import json
import os

import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tflite_bench import base_benchmark  # noqa: E402
from tflite_bench.cli import load_dataset  # noqa: E402
from tflite_bench.cli import main  # noqa: E402
from tflite_bench.models import resnet20  # noqa: E402


def test_resnet20_shape_and_size():
    model = resnet20()
    assert model.output_shape == (None, 10)
    assert 0.26e6 < model.count_params() < 0.28e6
    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert len(convs) == 19 + 2  # 19 3x3 convs + 2 projections


def test_time_interleaved_counts_runs(tmp_path):
    from keras_neuronprune.export import tflite

    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
    path = tflite(model, tmp_path / "m.tflite").path
    stats = base_benchmark.time_interleaved(
        [path, path], 1, warmup=1, rounds=3, runs_per_round=4
    )
    assert [s.runs for s in stats] == [12, 12]
    assert all(0 < s.min_ms <= s.median_ms <= s.p90_ms for s in stats)
    with pytest.raises(ValueError, match="rounds"):
        base_benchmark.time_interleaved([path], 1, rounds=0)

    # Accuracy on a dataset given as .npz (x_test / y_test).
    x = np.random.default_rng(0).standard_normal((20, 16)).astype("float32")
    y = np.argmax(model(x), axis=-1)
    y[:5] = (y[:5] + 1) % 8  # 5 of 20 labels made wrong
    np.savez(tmp_path / "d.npz", x_test=x, y_test=y)
    xs, ys = load_dataset(str(tmp_path / "d.npz"), limit=20)
    assert xs.shape == (20, 16) and ys.dtype == np.int64
    acc = base_benchmark.tflite_accuracy(path, xs, ys)
    assert acc == pytest.approx(0.75)
    with pytest.raises(ValueError, match="x_test"):
        np.savez(tmp_path / "bad.npz", a=x)
        load_dataset(str(tmp_path / "bad.npz"), limit=5)


def test_timing_and_accuracy_show_progress_only_when_asked(tmp_path, capsys):
    from keras_neuronprune.export import tflite

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tflite(model, tmp_path / "m.tflite").path
    x = np.zeros((6, 4), "float32")
    y = np.zeros((6,), "int64")
    capsys.readouterr()
    base_benchmark.time_interleaved([path], 1, warmup=0, rounds=2)
    base_benchmark.tflite_accuracy(path, x, y)
    assert capsys.readouterr().out == ""
    base_benchmark.time_interleaved([path], 1, warmup=0, rounds=2, verbose=1)
    out = capsys.readouterr().out
    assert "2/2" in out and "round" in out
    base_benchmark.tflite_accuracy(path, x, y, verbose=1)
    out = capsys.readouterr().out
    assert "6/6" in out and "sample" in out


def test_quiet_flag_turns_progress_off():
    from tflite_bench.cli import build_parser
    from tflite_bench.cli import config_from_args

    args = build_parser().parse_args(["--quick", "--quiet"])
    assert config_from_args(args).verbose == 0
    args = build_parser().parse_args(["--quick"])
    assert config_from_args(args).verbose == 1


def test_quick_mode_end_to_end(tmp_path):
    out = tmp_path / "results"
    assert main(["--quick", "--results-dir", str(out)]) == 0
    for name in (
        "results.csv",
        "results.json",
        "results.md",
        "latency_vs_flops.png",
    ):
        assert (out / name).exists(), name
    data = json.loads((out / "results.json").read_text())
    rows = data["rows"]
    assert {r["family"] for r in rows} == {"resnet20", "mobilenetv2"}
    assert {r["threads"] for r in rows} == {1, 2}
    for family in ("resnet20", "mobilenetv2"):
        fam = [r for r in rows if r["family"] == family and r["threads"] == 2]
        assert [r["model"] for r in fam] == [
            "dense",
            "r50_rt1",
            "r50_rt8",
            "taylor_r50_rt1",
            "taylor_r50_rt8",
        ]
        assert [r["criterion"] for r in fam] == [
            None,
            "uniform",
            "uniform",
            "taylor",
            "taylor",
        ]
        dense = fam[0]
        for r in fam:
            # Numerics were checked against the (pruned) Keras model.
            assert r["parity_passed"] and r["max_abs_diff"] < 1e-3
            assert r["median_ms"] > 0 and r["runs"] == 15
            assert os.path.exists(r["path"])
        for r in fam[1:3]:
            assert r["flops"] < 0.5 * dense["flops"]
        for r in fam[1:]:
            assert r["flops"] < dense["flops"]
            assert r["params"] < dense["params"]
            assert r["size_bytes"] < dense["size_bytes"]
            assert r["flop_reduction"] == pytest.approx(
                dense["flops"] / r["flops"]
            )
    md = (out / "results.md").read_text()
    assert "speed-up" in md and "ResNet-20" in md

    # Re-time the exported files (no re-export), one family, one thread.
    again = tmp_path / "again"
    argv = [
        "--retime",
        str(out / "results.json"),
        "--models",
        "resnet20",
        "--threads",
        "1",
        "--rounds",
        "2",
        "--runs-per-round",
        "3",
        "--results-dir",
        str(again),
    ]
    assert main(argv) == 0
    data = json.loads((again / "results.json").read_text())
    assert {r["family"] for r in data["rows"]} == {"resnet20"}
    assert {(r["threads"], r["runs"]) for r in data["rows"]} == {(1, 6)}
    assert data["meta"]["retimed_from"] == str(out / "results.json")
