import os

import pytest

from tflite_bench import adb

DATA = os.path.join(os.path.dirname(__file__), "data")


def _read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def test_parse_cpu_output_uses_timed_runs_not_warmup():
    out = adb.parse_benchmark_output(_read("benchmark_model_cpu.txt"))
    assert out["count"] == 838
    assert out["median_us"] == 1182
    assert out["p95_us"] == 1310
    assert out["avg_us"] == pytest.approx(1193.27)
    assert out["min_us"] == 1098 and out["std_us"] == 61
    assert out["init_us"] == 12345 and out["warmup_avg_us"] == 1214.6
    assert out["delegate"] is None


def test_parse_gpu_output_reads_delegation():
    out = adb.parse_benchmark_output(_read("benchmark_model_gpu.txt"))
    assert out["median_us"] == 755
    assert out["delegated_nodes"] == 31 and out["total_nodes"] == 31
    assert out["delegate"] == "TfLiteGpuDelegateV2"


def test_parse_old_format_and_failure():
    old = (
        "INFO: count=50 first=900 curr=880 min=870 max=990 avg=885.5 "
        "std=20\nInference timings in us: Init: 100, First inference: 900,"
        " Warmup (avg): 900, Inference (avg): 885.5\n"
    )
    out = adb.parse_benchmark_output(old)
    assert out["median_us"] is None and out["avg_us"] == 885.5
    with pytest.raises(ValueError, match="no timings"):
        adb.parse_benchmark_output("ERROR: Could not open 'x.tflite'.\n")


def test_command_construction():
    cpu = adb.benchmark_command(
        "adb", "S1", "/d/bm", "/d/m.tflite", threads=4, num_runs=20
    )
    assert cpu[:4] == ["adb", "-s", "S1", "shell"]
    assert cpu[4].split() == [
        "/d/bm",
        "--graph=/d/m.tflite",
        "--warmup_runs=10",
        "--num_runs=20",
        "--num_threads=4",
        "--use_xnnpack=true",
    ]
    gpu = adb.benchmark_command("adb", "S1", "/d/bm", "/d/m.tflite", 1, True)
    assert "--use_gpu=true" in gpu[4] and "xnnpack" not in gpu[4]
    assert adb.push_command("adb", "S1", "a", "b") == [
        "adb",
        "-s",
        "S1",
        "push",
        "a",
        "b",
    ]


def test_run_on_device_with_fake_adb(fake_adb, tmp_path):
    assert adb.adb_available()
    assert adb.list_devices() == ["FAKE0001"]
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    entries = []
    for name in ("dense", "r50_rt8"):
        path = tmp_path / f"net_{name}.tflite"
        path.write_bytes(b"TFL3")
        entries.append(
            {"family": "net", "model": name, "path": str(path), "flops": 10}
        )
    config = adb.DeviceConfig(
        benchmark_model=str(binary),
        use_gpu=True,
        threads=(1, 2),
        rounds=2,
        num_runs=30,
    )
    rows = adb.run_on_device(entries, config, log=lambda *a: None)

    assert [(r["backend"], r["threads"], r["model"]) for r in rows] == [
        ("device-cpu-xnnpack", 1, "dense"),
        ("device-cpu-xnnpack", 1, "r50_rt8"),
        ("device-cpu-xnnpack", 2, "dense"),
        ("device-cpu-xnnpack", 2, "r50_rt8"),
        ("device-gpu", 0, "dense"),
        ("device-gpu", 0, "r50_rt8"),
    ]
    assert rows[0]["median_ms"] == pytest.approx(1.182)
    assert rows[0]["p95_ms"] == pytest.approx(1.310)
    assert rows[0]["runs"] == 2 * 838
    assert rows[-1]["median_ms"] == pytest.approx(0.755)
    assert rows[-1]["delegated_nodes"] == 31

    calls = fake_adb()
    assert calls[0] == ["devices"]
    pushes = [c for c in calls if c[2:3] == ["push"]]
    assert pushes[0] == [
        "-s",
        "FAKE0001",
        "push",
        str(binary),
        "/data/local/tmp/knp_bench/benchmark_model",
    ]
    assert [p[4] for p in pushes[1:]] == [
        "/data/local/tmp/knp_bench/net_dense.tflite",
        "/data/local/tmp/knp_bench/net_r50_rt8.tflite",
    ]
    runs = [c for c in calls if c[2:3] == ["shell"] and "--graph=" in c[3]]
    # 2 thread settings + GPU, 2 rounds, 2 models; models alternate.
    assert len(runs) == 12
    assert "net_dense" in runs[0][3] and "net_r50_rt8" in runs[1][3]
    assert "--num_threads=1 --use_xnnpack=true" in runs[0][3]
    assert "--use_gpu=true" in runs[-1][3]


def test_device_selection_errors(fake_adb, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_ADB_DEVICES", "A B")
    config = adb.DeviceConfig(benchmark_model="x")
    with pytest.raises(RuntimeError, match="Several devices"):
        adb.resolve_serial(config)
    config.serial = "C"
    with pytest.raises(RuntimeError, match="not attached"):
        adb.resolve_serial(config)
    config.serial = "B"
    assert adb.resolve_serial(config) == "B"
    with pytest.raises(FileNotFoundError, match="benchmark_model"):
        adb.run_on_device([], adb.DeviceConfig(str(tmp_path / "none")))
