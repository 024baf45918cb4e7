import csv
import json
import os
import re
import types

import keras
import pytest
from keras import layers

from keras_neuronprune import count_cost
from tflite_bench import profile
from tflite_bench.base_benchmark import LatencyStats


def _residual_model():
    inp = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = layers.ReLU(name="r1")(x)
    y = layers.Conv2D(4, 3, padding="same", name="c2a")(x)
    y = layers.ReLU(name="r2a")(y)
    y = layers.Conv2D(4, 3, padding="same", name="c2b")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.ReLU(name="out")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(3, name="fc")(x)
    return keras.Model(inp, x)


def test_cut_points_residual_block_interior_is_not_a_cut():
    assert profile.cut_points(_residual_model()) == [
        "c1",
        "r1",
        "add",
        "out",
        "gap",
        "fc",
    ]


def test_cut_points_chain_every_layer():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            layers.Dense(5, name="d1"),
            layers.ReLU(name="act"),
            layers.Dense(4, name="d2"),
            layers.Dense(2, name="d3"),
        ]
    )
    assert profile.cut_points(model) == ["d1", "act", "d2", "d3"]


def test_cut_points_multi_branch_concat():
    inp = keras.Input((8, 8, 3))
    s = layers.Conv2D(4, 1, name="stem")(inp)
    a = layers.Conv2D(2, 1, name="a")(s)
    b = layers.Conv2D(2, 3, padding="same", name="b1")(s)
    b = layers.ReLU(name="b2")(b)
    c = layers.MaxPooling2D(3, 1, padding="same", name="pool_branch")(s)
    x = layers.Concatenate(name="cat")([a, b, c])
    x = layers.Conv2D(4, 1, name="post")(x)
    model = keras.Model(inp, x)
    assert profile.cut_points(model) == ["stem", "cat", "post"]


def test_cut_points_and_choose_segments_mobilenetv2():
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    cuts = profile.cut_points(model)
    assert cuts[:3] == ["Conv1", "bn_Conv1", "Conv1_relu"]
    assert "block_2_add" in cuts and "block_1_project_BN" in cuts
    # Inside the residual block 2: block_1's output is still needed.
    assert "block_2_project_BN" not in cuts
    assert "block_2_expand" not in cuts
    assert cuts[-1] == "predictions"

    chosen = profile.choose_segments(model, max_segments=8)
    assert 1 < len(chosen) <= 8 and chosen[-1] == "predictions"
    assert chosen == [c for c in cuts if c in chosen]  # graph order
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    for name in chosen[:-1]:
        # Never split a conv from the BN / ReLU folded into it, nor padding
        # from the conv it is folded into.
        assert kinds[name] != "ZeroPadding2D"
        nxt = cuts[cuts.index(name) + 1]
        assert kinds[nxt] not in ("BatchNormalization", "ReLU"), name
    assert profile.choose_segments(model, max_segments=1) == ["predictions"]


def test_choose_segments_limits_and_errors():
    model = _residual_model()
    # c1 and add are followed by a ReLU that the converter fuses into them.
    assert profile.choose_segments(model, max_segments=100) == [
        "r1",
        "out",
        "gap",
        "fc",
    ]
    cost = {row.name: row.flops for row in count_cost(model).layers}
    at_r1 = cost["c1"] + cost["r1"]
    at_out = at_r1 + sum(cost[n] for n in ("c2a", "r2a", "c2b", "add", "out"))
    total = sum(cost.values())
    assert at_r1 < total / 3 < at_out  # r1 is nearest to a third
    assert profile.choose_segments(model, max_segments=3) == [
        "r1",
        "out",
        "fc",
    ]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_segments"):
            profile.choose_segments(model, max_segments=bad)


def _dense_chain(width):
    return keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(width, use_bias=False, name="a"),
            layers.Dense(width, use_bias=False, name="b"),
            layers.Dense(4, use_bias=False, name="c"),
        ]
    )


def _stats(median, cpu=None):
    return LatencyStats(
        median_ms=median,
        p90_ms=median,
        mean_ms=median,
        min_ms=median,
        std_ms=0.0,
        runs=1,
        cpu_median_ms=cpu,
    )


def test_profile_segments_differencing(monkeypatch, tmp_path):
    dense, pruned = _dense_chain(16), _dense_chain(8)
    # Prefix medians (ms); the pruned "c" segment comes out negative.
    medians = {
        "dense_01_a": 1.0,
        "dense_02_b": 3.0,
        "dense_03_c": 3.5,
        "pruned_01_a": 0.6,
        "pruned_02_b": 1.1,
        "pruned_03_c": 1.05,
    }
    calls = []

    def fake_export(model, path, parity_samples=4, **kwargs):
        assert parity_samples == 1
        with open(path, "w") as f:
            f.write(model.name)
        return types.SimpleNamespace(
            path=path, parity=types.SimpleNamespace(max_abs_diff=0.0)
        )

    def fake_time(paths, num_threads, warmup, rounds, runs_per_round):
        calls.append((list(paths), num_threads))
        names = [os.path.basename(p)[: -len(".tflite")] for p in paths]
        return [_stats(medians[n] * num_threads, cpu=medians[n]) for n in names]

    monkeypatch.setattr("keras_neuronprune.export.tflite", fake_export)
    monkeypatch.setattr(
        "tflite_bench.base_benchmark.time_interleaved", fake_time
    )
    log = []
    rows = profile.profile_segments(
        dense,
        pruned,
        ["c", "a", "b"],  # sorted into graph order
        threads=(1, 2),
        work_dir=str(tmp_path),
        warmup=0,
        rounds=1,
        runs_per_round=1,
        log=log.append,
    )
    # One interleaved run per thread count over all six prefixes.
    assert [t for _, t in calls] == [1, 2]
    assert all(len(p) == 6 for p, _ in calls)
    assert sum("exported" in line for line in log) == 6
    assert [(r["threads"], r["segment"]) for r in rows] == [
        (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)
    ]  # fmt: skip
    one = rows[:3]
    assert [r["first_layer"] for r in one] == ["a", "b", "c"]
    assert [r["last_layer"] for r in one] == ["a", "b", "c"]
    # Dense(no bias) FLOPs = 2 * in * out.
    assert [r["dense_flops"] for r in one] == [256, 512, 128]
    assert [r["pruned_flops"] for r in one] == [128, 128, 64]
    assert [r["flop_reduction"] for r in one] == [2.0, 4.0, 2.0]
    assert [r["dense_ms"] for r in one] == pytest.approx([1.0, 2.0, 0.5])
    assert [r["pruned_ms"] for r in one] == pytest.approx([0.6, 0.5, -0.05])
    assert one[0]["speedup"] == pytest.approx(1.0 / 0.6)
    assert one[0]["efficiency"] == pytest.approx(1.0 / 0.6 / 2.0)
    assert one[1]["speedup"] == pytest.approx(4.0)
    assert one[1]["efficiency"] == pytest.approx(1.0)
    assert one[2]["speedup"] is None and one[2]["efficiency"] is None
    assert [r["pruned_share"] for r in one] == pytest.approx(
        [0.6 / 1.05, 0.5 / 1.05, -0.05 / 1.05]
    )
    assert [r["pruned_cpu_ms"] for r in one] == pytest.approx([0.6, 0.5, -0.05])
    # Dense layers are no convolutions: no channel range.
    assert one[0]["pruned_min_channels"] is None
    two = rows[3:]
    assert [r["dense_ms"] for r in two] == pytest.approx([2.0, 4.0, 1.0])
    assert two[1]["efficiency"] == pytest.approx(1.0)

    meta = {
        "description": "chain",
        "ratio": 0.5,
        "round_to": 1,
        "dense_flops": 896,
        "pruned_flops": 320,
        "segments": 3,
        "warmup": 0,
        "rounds": 1,
        "runs_per_round": 1,
    }
    paths = profile.write_all(rows, meta, str(tmp_path / "out"))
    with open(paths["csv"]) as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 6 and csv_rows[2]["efficiency"] == ""
    assert float(csv_rows[1]["speedup"]) == pytest.approx(4.0)
    md = open(paths["markdown"]).read()
    assert "## 1 thread(s)" in md and "## 2 thread(s)" in md
    assert "| 2 | b | b |" in md and "| all |" in md


def test_profile_segments_rejects_bad_cuts(tmp_path):
    model = _residual_model()
    with pytest.raises(ValueError, match="c2a"):
        profile.profile_segments(model, model, ["c2a"], work_dir=tmp_path)
    with pytest.raises(ValueError, match="cuts"):
        profile.profile_segments(model, model, [], work_dir=tmp_path)
    with pytest.raises(ValueError, match="threads"):
        profile.profile_segments(
            model, model, ["fc"], threads=(0,), work_dir=tmp_path
        )


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--model", "mobilenetv2", "--ratio", "1.5"], "--ratio.*1.5"),
        (["--model", "mobilenetv2", "--ratio", "0"], "--ratio.*0"),
        (["--model", "nonet"], "--model.*nonet"),
        (["--model", "missing.keras"], "--model.*missing.keras"),
        (["--model", "resnet20", "--threads", "0"], "--threads.*0"),
        (["--model", "resnet20", "--max-segments", "x"], "--max-segments"),
    ],
)
def test_cli_rejects_bad_arguments(argv, match, capsys):
    with pytest.raises(SystemExit):
        profile.main(argv)
    assert re.search(match, capsys.readouterr().err)


def test_end_to_end_resnet20(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from keras_neuronprune import thin_model
    from keras_neuronprune import uniform_keep
    from tflite_bench.models import build

    out = tmp_path / "prof"
    argv = [
        "--model", "resnet20", "--resolution", "16", "--ratio", "0.5",
        "--round-to", "8", "--max-segments", "3", "--threads", "1",
        "--warmup", "0", "--rounds", "1", "--runs-per-round", "2",
        "--results-dir", str(out),
    ]  # fmt: skip
    assert profile.main(argv) == 0
    for name in ("profile.csv", "profile.json", "profile.md", "profile.png"):
        assert (out / name).exists(), name
    data = json.loads((out / "profile.json").read_text())
    rows, meta = data["rows"], data["meta"]
    assert len(rows) == 3 and rows[-1]["last_layer"] == "logits"
    assert len(os.listdir(out / "models" / "resnet20")) == 6

    dense, _ = build("resnet20", resolution=16)
    pruned, _ = thin_model(dense, uniform_keep(dense, 0.5, round_to=8))
    assert sum(r["dense_flops"] for r in rows) == count_cost(dense).flops
    assert sum(r["pruned_flops"] for r in rows) == count_cost(pruned).flops
    assert meta["dense_flops"] == count_cost(dense).flops
    # Differences telescope back to the whole-model medians.
    assert sum(r["dense_ms"] for r in rows) == pytest.approx(
        rows[-1]["dense_prefix_ms"]
    )
    assert all(r["dense_prefix_ms"] > 0 for r in rows)
    # Stage 1 (16 channels) is pruned to 8.
    first = rows[0]
    assert first["first_layer"] == "stem_conv"
    assert (first["dense_max_channels"], first["pruned_max_channels"]) == (
        16,
        8,
    )
    assert first["cut_shape_pruned"] == "16x16x8"
