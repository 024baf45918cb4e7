import json

import keras
import numpy as np
import pytest

from keras_neuronprune import prune_structured
from keras_neuronprune import strip_pruning
from tflite_bench import cli
from tflite_bench import latency_table as lt


def _tiny(width=16):
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(width, 3, padding="same", name="c1")(x)
    y = keras.layers.ReLU(name="r1")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw1")(y)
    y = keras.layers.Conv2D(width, 1, name="p1")(y)
    y = keras.layers.ReLU(name="r2")(y)
    # Same class, config and shape as dw1: shares its samples.
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw2")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(4, name="fc")(y)
    return keras.Model(x, y, name="tiny")


def test_sample_counts_are_tile_multiples_and_the_size():
    counts = lt.sample_counts(96, 16, samples=4)
    assert counts[-1] == 96
    assert all(c % 16 == 0 for c in counts)
    assert {16, 32, 64} <= set(counts)
    assert lt.sample_counts(20, 16, samples=2) == [16, 20]
    assert lt.sample_counts(3, 16) == [3]


def test_units_share_entries_across_identical_layers():
    model = _tiny()
    from keras_neuronprune import channel_groups

    groups = [g for g in channel_groups(model) if g.prunable]
    units, unmodeled = lt.latency_units(model, groups)
    by_name = {u["name"]: u for u in units}
    assert set(by_name) == {"c1", "dw1", "p1", "dw2", "fc"}
    assert by_name["dw1"]["entry"] == by_name["dw2"]["entry"]
    assert by_name["c1"]["entry"] != by_name["p1"]["entry"]
    assert by_name["p1"]["n_in"] == 16 and by_name["fc"]["n_out"] == 4
    assert unmodeled == []


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latency_table")
    model = _tiny()
    table = lt.build_table(
        model,
        threads=1,
        tile=8,
        samples=1,
        work_dir=str(folder / "models"),
        warmup=1,
        rounds=1,
        runs_per_round=2,
        log=lambda *_: None,
    )
    path = table.save(str(folder / "tiny.json"))
    return model, table, path


def test_build_save_load_and_refusals(built):
    model, table, path = built
    data = json.load(open(path))
    assert data["built_for"]["threads"] == 1
    assert data["built_for"]["runtime"] == "ai-edge-litert"
    assert data["built_for"]["input_shape"] == [8, 8, 3]
    assert len(data["layers"]) == 5
    # dw1 and dw2 measured once: 4 entries for 5 layers.
    assert len(data["entries"]) == 4
    for entry in data["entries"].values():
        counts = entry["out"]["counts"]
        assert counts == sorted(counts) and counts[-1] == entry["n_out"]
        assert all(ms > 0 for ms in entry["out"]["ms"])
    assert data["dense_ms"] > 0 and data["fixed_ms"] >= 0
    loaded = lt.LatencyTable.load(path, model=model, threads=1)
    assert loaded.dense_ms == pytest.approx(table.dense_ms)
    with pytest.raises(ValueError, match="1 thread.*not for threads 2"):
        lt.LatencyTable.load(path, model=model, threads=2)
    with pytest.raises(ValueError, match="not for runtime version '0.0'"):
        lt.LatencyTable.load(path, version="0.0")
    with pytest.raises(ValueError, match="layer .* differs"):
        lt.LatencyTable.load(path, model=_tiny(width=24))
    curves = loaded.group_curves(model)
    counts, ms = curves["c1"]
    assert counts[-1] == 16 and np.all(np.diff(ms) >= -1e-9)


def test_measured_table_drives_prune_structured(built):
    from keras_neuronprune import channel_groups
    from keras_neuronprune.core.selection import ChannelSelector
    from keras_neuronprune.pruning._latency_target import LatencyModel
    from keras_neuronprune.pruning._latency_target import smallest_share

    model, table, _ = built
    groups = [g for g in channel_groups(model) if g.prunable]
    latency = LatencyModel(table.to_dict(), groups)
    smallest = smallest_share(ChannelSelector().plans(groups), latency)
    target = 0.5 * (1.0 + smallest)
    pruned = prune_structured(
        model, criterion="l1", target_latency=target, latency_table=table
    )
    pruned.controller.prune(pruned)
    thin = strip_pruning(pruned)
    assert thin.count_params() < model.count_params()
    share = latency.share(pruned.controller.kept_counts(pruned))
    assert share <= target + 1e-9


def test_cli_has_the_latency_table_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["latency-table", "--help"])
    assert info.value.code == 0
    assert "--output" in capsys.readouterr().out


def test_non_decreasing_keeps_full_width_and_orders_noise():
    assert lt.non_decreasing([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.0, 2.0, 4.0]
    assert lt.non_decreasing([5.0, 1.0, 2.0]) == [1.0, 1.0, 2.0]
    assert lt.non_decreasing([2.0]) == [2.0]


def test_table_timed_on_a_device_over_adb(fake_adb, tmp_path, capsys):
    model_path = str(tmp_path / "tiny.keras")
    _tiny().save(model_path)
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    out = str(tmp_path / "tiny_device.json")
    argv = ["--model", model_path, "--threads", "1", "--output", out]
    with pytest.raises(SystemExit) as info:
        lt.main(argv + ["--adb", "--benchmark-model", str(binary)])
    assert info.value.code == 2
    assert "--adb needs --tile" in capsys.readouterr().err
    device = ["--adb", "--benchmark-model", str(binary), "--tile", "8"]
    opts = ["--samples", "1", "--rounds", "1", "--device-runs", "5"]
    assert lt.main(argv + device + opts) == 0

    built_for = json.load(open(out))["built_for"]
    assert built_for["runtime"] == lt.DEVICE_RUNTIME
    assert built_for["threads"] == 1
    assert built_for["runtime_version"] == "benchmark_model"
    calls = fake_adb()
    pushed = [c[4] for c in calls if c[2:3] == ["push"]]
    runs = [c[3] for c in calls if c[2:3] == ["shell"] and "--graph=" in c[3]]
    # Every unit model, the overhead model and the dense model, once each.
    assert pushed[0].endswith("/benchmark_model")
    assert len(runs) == len(pushed) - 1
    assert any("dense.tflite" in r for r in runs)
    assert all("--num_threads=1 --use_xnnpack=true" in r for r in runs)
    assert all("--num_runs=5" in r for r in runs)
    # A device table is refused as a host table and read as a device one.
    with pytest.raises(ValueError, match="not for runtime 'ai-edge-litert'"):
        lt.LatencyTable.load(out, model=_tiny())
    table = lt.LatencyTable.load(
        out, model=_tiny(), threads=1, runtime=lt.DEVICE_RUNTIME
    )
    assert table.dense_ms > 0
