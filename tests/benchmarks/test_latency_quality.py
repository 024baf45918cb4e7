"""Tests of `python -m benchmarks.latency_quality` (`--quick`; no real data)."""

import json
import os

import pytest

from benchmarks import latency_quality as lq

# A tiny table and few bisection steps: the end-to-end run stays short.
QUICK = [
    "--quick",
    "--quiet",
    "--width",
    "1",
    "--speedups",
    "1.5",
    "--seeds",
    "0",
    "--reg-epochs",
    "0",
    "--finetune-epochs",
    "1",
    "--tile",
    "8",
    "--table-samples",
    "1",
    "--table-rounds",
    "1",
    "--match-iterations",
    "4",
    "--rounds",
    "2",
    "--runs-per-round",
    "2",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    results = str(tmp_path_factory.mktemp("latency_quality"))
    status = lq.main(QUICK + ["--results-dir", results])
    with open(os.path.join(results, "latency_quality.json")) as f:
        return results, status, json.load(f)


def test_quick_run_writes_table_report_and_plot(quick_run):
    results, status, out = quick_run
    assert status == 0
    for name in (
        "latency_table_t2.json",
        "latency_quality.json",
        "latency_quality.md",
        "latency_vs_accuracy.png",
    ):
        assert os.path.getsize(os.path.join(results, name)) > 0, name
    rows = out["rows"]
    assert sorted(r["method"] for r in rows) == ["flops", "latency"]
    text = open(os.path.join(results, "latency_quality.md")).read()
    assert "| 1.5x | latency | 1 |" in text and "| 1.5x | flops | 1 |" in text


@pytest.mark.xfail(
    strict=False,
    reason="the predicted shares come from a latency table timed on this "
    "host; on a loaded runner the bisection can miss the 8% bound",
)
def test_both_methods_at_the_same_predicted_latency(quick_run):
    rows = {r["method"]: r for r in quick_run[2]["rows"]}
    lat, flops = rows["latency"], rows["flops"]
    # The knapsack meets the asked budget...
    assert lat["predicted_share"] <= 1 / 1.5 + 1e-6
    # ...and the FLOPs ratio is bisected to the same predicted latency
    # (a tiny model's widths move in 8-channel tiles: a few percent).
    assert flops["predicted_share"] == pytest.approx(
        lat["predicted_share"], rel=0.08
    )
    # The FLOPs-targeted model keeps what its ratio asks for.
    assert flops["flops_kept"] == pytest.approx(
        1 - flops["flops_pruning_ratio"], abs=0.05
    )
    for r in (lat, flops):
        assert r["counts_match"]
        assert 0.0 <= r["acc_final"] <= 1.0
        assert 0.0 < r["kept_importance"] <= 1.0
        assert r["worst_group_importance"] <= r["kept_importance"] + 1e-9
        assert r["median_ms"] > 0 and r["dense_ms"] > 0
        assert r["measured_speedup"] == pytest.approx(
            r["dense_ms"] / r["median_ms"]
        )


def _row(method, seed, acc, ms):
    return {
        "asked_speedup": 2.0,
        "method": method,
        "seed": seed,
        "acc_final": acc,
        "median_ms": ms,
    }


def test_paired_deltas_are_per_seed_differences_in_points():
    rows = [
        _row("latency", 0, 0.60, 1.0),
        _row("flops", 0, 0.58, 1.2),
        _row("latency", 1, 0.55, 1.1),
        _row("flops", 1, 0.56, 1.3),
        _row("latency", 2, 0.50, 1.0),  # no FLOPs partner: left out
    ]
    [(speedup, deltas, ms)] = lq.paired_deltas(rows)
    assert speedup == 2.0
    assert deltas == pytest.approx([2.0, -1.0])
    assert ms == pytest.approx((1.05, 1.25))


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--speedups", "1"], "--speedups"),
        (["--first-seed-only", "x"], "--first-seed-only"),
        (["--rounds", "0"], "--rounds"),
    ],
)
def test_bad_arguments_name_the_option(argv, match, capsys):
    assert lq.main(["--quick"] + argv) == 2
    assert match in capsys.readouterr().err
