import csv
import json

import pytest

from tflite_bench import report
from tflite_bench.suite import BenchConfig


def _row(model, ratio, round_to, threads, median, flops, odd=0):
    return {
        "family": "net",
        "description": "Net 32x32",
        "model": model,
        "ratio": ratio,
        "round_to": round_to,
        "backend": "host-xnnpack",
        "threads": threads,
        "median_ms": median,
        "p90_ms": median * 1.1,
        "p95_ms": median * 1.2,
        "mean_ms": median,
        "min_ms": median * 0.9,
        "std_ms": 0.1,
        "runs": 50,
        "params": int(flops / 10),
        "flops": flops,
        "tflite_macs": flops // 2,
        "size_bytes": flops,
        "max_abs_diff": 1e-6,
        "parity_passed": True,
        "gpu_compatible": True,
        "odd_channel_convs": odd,
        "accuracy": None,
    }


@pytest.fixture
def rows():
    return report.finalize(
        [
            _row("dense", 0.0, None, 2, 10.0, 1000),
            _row("r50_rt1", 0.5, 1, 2, 12.0, 240, odd=5),
            _row("r50_rt8", 0.5, 8, 2, 3.0, 250),
            _row("dense", 0.0, None, 1, 20.0, 1000),
            _row("r50_rt8", 0.5, 8, 1, 8.0, 250),
        ]
    )


def test_speedup_and_efficiency_formulas(rows):
    by = {(r["model"], r["threads"]): r for r in rows}
    r = by[("r50_rt8", 2)]
    assert r["flop_reduction"] == pytest.approx(4.0)
    assert r["speedup"] == pytest.approx(10.0 / 3.0)
    assert r["efficiency"] == pytest.approx((10.0 / 3.0) / 4.0)
    assert r["slower_than_parent"] is False
    assert by[("dense", 2)]["speedup"] == 1.0
    assert by[("r50_rt8", 1)]["efficiency"] == pytest.approx(2.5 / 4.0)
    assert "0.62 of the FLOP reduction" in by[("r50_rt8", 1)]["notes"]


def test_slower_and_odd_channel_rows_are_flagged(rows):
    r = {(r["model"], r["threads"]): r for r in rows}[("r50_rt1", 2)]
    assert r["slower_than_parent"] is True
    assert "SLOWER than its dense parent" in r["notes"]
    assert "odd channel counts cost speed" in r["notes"]
    assert "5 convs" in r["notes"]


def test_goal_rows_and_markdown(rows):
    goals = report.goal_rows(rows)
    assert [(g["model"], g["threads"]) for g in goals] == [("r50_rt8", 2)]
    meta = report.environment(BenchConfig(), 1.0)
    md = report.markdown(rows, meta)
    assert "## Net 32x32 (host-xnnpack)" in md
    assert "| net | 0.50 | 4.00 | 3.33 | 0.833 | NO | - | - |" in md
    assert "net/r50_rt1 (t=2, host-xnnpack)" in md


def test_write_all_creates_every_artifact(rows, tmp_path):
    meta = report.environment(BenchConfig(), 1.0)
    paths = report.write_all(rows, meta, str(tmp_path / "out"))
    assert set(paths) == {"csv", "json", "markdown", "plot"}
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert table[0]["family"] == "net"
    data = json.loads(open(paths["json"]).read())
    assert data["meta"]["config"]["threads"] == [1, 2, 4]
    assert len(data["rows"]) == len(rows)
    with open(paths["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_criterion_rows_are_kept_apart_from_uniform_ones(tmp_path):
    taylor_rt1 = _row("taylor_r50_rt1", 0.5, 1, 2, 9.0, 400, odd=3)
    taylor_rt1["criterion"] = "taylor"
    taylor_rt8 = _row("taylor_r50_rt8", 0.5, 8, 2, 2.0, 420)
    taylor_rt8["criterion"] = "taylor"
    uniform = _row("r50_rt8", 0.5, 8, 2, 3.0, 250)
    uniform["criterion"] = "uniform"
    # A row of an older results.json: no `criterion`, so uniform.
    legacy = _row("r25_rt8", 0.25, 8, 2, 6.0, 560)
    rows = report.finalize(
        [
            _row("dense", 0.0, None, 2, 10.0, 1000),
            uniform,
            legacy,
            taylor_rt1,
            taylor_rt8,
        ]
    )
    kinds = [report.variant_kind(r) for r in rows]
    assert kinds == ["dense", "uniform", "uniform", "taylor", "taylor"]
    # The goal is judged on uniform pruning only.
    assert [g["model"] for g in report.goal_rows(rows)] == [
        "r50_rt8",
        "r25_rt8",
    ]
    by = {r["model"]: r for r in rows}
    # Taylor round_to=1 is compared with Taylor round_to=8 (2 ms, 1.05x its
    # FLOPs), not with the uniform model.
    note = by["taylor_r50_rt1"]["notes"]
    assert "odd channel counts cost speed: 9.00 ms" in note
    assert "vs 2.00 ms with round_to=8 despite 1.05x its FLOPs" in note
    assert by["taylor_r50_rt8"]["flop_reduction"] == pytest.approx(1000 / 420)
    md = report.markdown(rows, report.environment(BenchConfig(), 1.0))
    assert "| taylor_r50_rt8 | taylor | 0.50 | 8 |" in md
    assert "| r25_rt8 | uniform | 0.25 | 8 |" in md
    paths = report.write_all(
        rows, {**report.environment(BenchConfig(), 1.0)}, str(tmp_path)
    )
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [t["criterion"] for t in table] == [
        "",
        "uniform",
        "",
        "taylor",
        "taylor",
    ]
    assert "plot" in paths


def test_goal_table_takes_cpu_time_from_the_one_thread_run():
    raw = [
        _row("dense", 0.0, None, 2, 10.0, 1000),
        _row("r50_rt8", 0.5, 8, 2, 3.0, 250),
        _row("dense", 0.0, None, 1, 20.0, 1000),
        _row("r50_rt8", 0.5, 8, 1, 8.0, 250),
    ]
    # 2 threads: spinning workers inflate CPU time; 1 thread: 20 / 6.25.
    for r, cpu in zip(raw, (30.0, 2.0, 20.0, 6.25)):
        r["cpu_median_ms"] = cpu
    rows = report.finalize(raw)
    md = report.markdown(rows, report.environment(BenchConfig(), 1.0))
    assert "| net | 0.50 | 4.00 | 3.33 | 0.833 | NO | 3.20 | 0.800 |" in md
