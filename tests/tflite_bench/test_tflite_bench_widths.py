import json

import numpy as np
import pytest

from tflite_bench import widths


def _rows(times, threads=2, kind="pointwise"):
    return [
        {"kind": kind, "channels": c, "threads": threads, "median_ms": t}
        for c, t in times.items()
    ]


def test_layer_models_and_their_macs():
    model, macs = widths.layer_model("pointwise", 8, 10)
    assert model.output_shape == (None, 10, 10, 8)
    assert macs == 10 * 10 * 8 * 8
    model, macs = widths.layer_model("depthwise", 6, 4)
    assert model.output_shape == (None, 4, 4, 6)
    assert macs == 4 * 4 * 6 * 9
    assert model.count_params() == 6 * 9 + 6
    model, macs = widths.layer_model("conv3x3", 3, 5)
    assert macs == 5 * 5 * 3 * 3 * 9
    with pytest.raises(ValueError, match="kind='dense'"):
        widths.layer_model("dense", 8, 4)
    with pytest.raises(ValueError, match="channels=0"):
        widths.layer_model("pointwise", 0, 4)


def test_suggestion_is_the_tile_width():
    # A 16-wide tile: widths 4..16 cost the same, 20..32 the same.
    tile16 = {4: 1.0, 8: 1.0, 12: 1.0, 16: 1.05, 20: 2.0, 24: 2.0, 32: 2.02}
    assert widths.suggest_round_to(_rows(tile16)) == {2: {"pointwise": 16}}
    # Time proportional to width: rounding up is never free.
    linear = {c: c / 8 for c in (4, 8, 12, 16, 20, 24, 32)}
    assert widths.suggest_round_to(_rows(linear)) == {2: {"pointwise": 1}}
    # An 8-wide tile: 4 -> 8 free, 12 -> 16 free, but 8 -> 16 is not.
    tile8 = {4: 1.0, 8: 1.0, 12: 2.0, 16: 2.0, 20: 3.0, 24: 3.0, 32: 4.0}
    assert widths.suggest_round_to(_rows(tile8)) == {2: {"pointwise": 8}}
    # Per kind and per thread count.
    rows = _rows(tile16) + _rows(tile8, kind="depthwise")
    rows += _rows(linear, threads=1)
    assert widths.suggest_round_to(rows) == {
        1: {"pointwise": 1},
        2: {"depthwise": 8, "pointwise": 16},
    }


def test_sweep_end_to_end(tmp_path):
    out = tmp_path / "w"
    argv = [
        "--kinds",
        "pointwise",
        "depthwise",
        "--channels",
        "8",
        "4",
        "--resolution",
        "8",
        "--threads",
        "1",
        "--warmup",
        "1",
        "--rounds",
        "2",
        "--runs-per-round",
        "2",
        "--results-dir",
        str(out),
    ]
    assert widths.main(argv) == 0
    data = json.loads((out / "widths.json").read_text())
    rows = data["rows"]
    assert [(r["kind"], r["channels"]) for r in rows] == [
        ("pointwise", 4),
        ("pointwise", 8),
        ("depthwise", 4),
        ("depthwise", 8),
    ]
    for r in rows:
        assert r["median_ms"] > 0
        np.testing.assert_allclose(
            r["ns_per_mac"], 1e6 * r["median_ms"] / r["macs"]
        )
    assert set(data["meta"]["suggestion"]) == {"1"}
    md = (out / "widths.md").read_text()
    assert "| channels | pointwise | depthwise |" in md
    assert (out / "widths.csv").exists() and (out / "widths.png").exists()
    with pytest.raises(SystemExit):
        widths.main(["--channels", "0"])
