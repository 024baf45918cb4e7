"""Latency-targeted pruning: the table model, the knapsack, the API."""

import math

import keras
import numpy as np
import pytest

from keras_neuronprune import channel_groups
from keras_neuronprune import prune_structured
from keras_neuronprune import strip_pruning
from keras_neuronprune.core.selection import ChannelSelector
from keras_neuronprune.graph.channel_group import ChannelGroup
from keras_neuronprune.graph.channel_group import GroupMember
from keras_neuronprune.pruning import _latency_target as lt

TILE = 16


def _group(name, size, layer):
    channels = np.arange(size).reshape(size, 1)
    return ChannelGroup(
        name=name,
        size=size,
        prunable=True,
        exact=True,
        reason=None,
        members=[GroupMember(layer, "output", "producer", 0, channels)],
    )


def _steps(size, tile, per_tile):
    counts = list(range(tile, size + 1, tile))
    return {"counts": counts, "ms": [per_tile * c / tile for c in counts]}


def _table(layers, fixed=0.0):
    """A table of 1-D (depthwise-like) layers: name -> (size, ms per tile)."""
    entries, units = {}, []
    for name, (size, per_tile) in layers.items():
        entries[name] = {"tile": TILE, "out": _steps(size, TILE, per_tile)}
        units.append(
            {"name": name, "n_in": size, "n_out": size, "depthwise": True,
             "entry": name}
        )  # fmt: skip
    dense = fixed + sum(e["out"]["ms"][-1] for e in entries.values())
    return {
        "format": lt.TABLE_FORMAT,
        "built_for": {},
        "dense_ms": dense,
        "fixed_ms": fixed,
        "layers": units,
        "entries": entries,
    }


def test_step_curve_costs_whole_tiles():
    curve = lt.step_curve([16, 32, 48], [1.0, 2.0, 3.0], 48, 16)
    np.testing.assert_allclose(curve[[0, 1, 16, 17, 32, 33, 48]],
                               [0, 1, 1, 2, 2, 3, 3])  # fmt: skip


def test_solver_picks_tile_aligned_widths_under_budget():
    rng = np.random.default_rng(0)
    groups = [_group("a", 64, "la"), _group("b", 48, "lb")]
    table = _table({"la": (64, 1.0), "lb": (48, 1.0)})
    model = lt.LatencyModel(table, groups)
    plans = ChannelSelector().plans(groups)
    scores = {g.name: rng.random(g.size) + 0.1 for g in groups}
    for target in (0.75, 0.5, 0.3):
        counts = lt.solve_latency(plans, scores, {}, model, target)
        assert model.share(counts) <= target + 1e-9
        # Widths inside a tile cost as much as the whole tile: the solver
        # refills them, so every width is a multiple of the tile.
        assert all(c % TILE == 0 for c in counts.values()), counts
        # And it spends the budget: one more tile does not fit.
        slack = target * model.base_ms - model.predict(model.vector(counts))
        assert slack < 1.0 + 1e-9


def test_solver_removes_the_least_important_channels_per_ms():
    groups = [_group("cheap", 64, "la"), _group("dear", 64, "lb")]
    table = _table({"la": (64, 1.0), "lb": (64, 1.0)})
    model = lt.LatencyModel(table, groups)
    plans = ChannelSelector().plans(groups)
    scores = {"cheap": np.full(64, 1.0), "dear": np.full(64, 10.0)}
    counts = lt.solve_latency(plans, scores, {}, model, 0.7, normalize=False)
    assert counts == {"cheap": 16, "dear": 64}


def test_solver_prefers_the_group_whose_channels_save_more_time():
    groups = [_group("slow", 64, "la"), _group("fast", 64, "lb")]
    # Same importance; a tile of "slow" costs 4x more time.
    table = _table({"la": (64, 4.0), "lb": (64, 1.0)})
    model = lt.LatencyModel(table, groups)
    plans = ChannelSelector().plans(groups)
    scores = {"slow": np.ones(64), "fast": np.ones(64)}
    counts = lt.solve_latency(plans, scores, {}, model, 0.6)
    assert counts["slow"] < counts["fast"]
    assert model.share(counts) <= 0.6 + 1e-9


def test_solver_respects_fixed_groups_and_limits():
    groups = [_group("a", 64, "la"), _group("b", 64, "lb")]
    table = _table({"la": (64, 1.0), "lb": (64, 1.0)})
    model = lt.LatencyModel(table, groups)
    plans = ChannelSelector(min_channels=32).plans(groups)
    scores = {"a": np.ones(64), "b": np.ones(64)}
    counts = lt.solve_latency(plans, scores, {"a": 64}, model, 0.75)
    assert counts["a"] == 64
    assert counts["b"] == 32


def test_unreachable_target_names_the_smallest_latency():
    groups = [_group("a", 64, "la")]
    table = _table({"la": (64, 1.0)}, fixed=4.0)
    model = lt.LatencyModel(table, groups)
    plans = ChannelSelector().plans(groups)
    smallest = lt.smallest_share(plans, model)
    assert smallest == pytest.approx(5.0 / 8.0)
    with pytest.raises(ValueError, match="smallest reachable latency is 0.625"):
        lt.solve_latency(plans, {"a": np.ones(64)}, {}, model, 0.5)


def test_mixing_layer_scales_with_kept_inputs():
    producer = _group("p", 32, "conv_a")
    producer.members.append(
        GroupMember("conv_b", "input", "consumer", 0,
                    np.arange(32).reshape(32, 1))
    )  # fmt: skip
    table = _table({"conv_a": (32, 1.0)})
    table["layers"].append(
        {"name": "conv_b", "n_in": 32, "n_out": 16, "depthwise": False,
         "entry": "b"}
    )  # fmt: skip
    table["entries"]["b"] = {
        "tile": TILE,
        "out": {"counts": [16], "ms": [2.0]},
        "in": {"counts": [8, 16, 32], "ms": [0.5, 1.0, 2.0]},
    }
    model = lt.LatencyModel(table, [producer])
    assert model.predict(model.vector({})) == pytest.approx(4.0)
    # 16 of 32 inputs: conv_a one tile (1.0), conv_b at half cost (1.0).
    assert model.predict(model.vector({"p": 16})) == pytest.approx(2.0)


def _tiny(name="tiny", width=48):
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(32, 3, padding="same", name="c1")(x)
    y = keras.layers.BatchNormalization(name="bn1")(y)
    y = keras.layers.ReLU(name="r1")(y)
    y = keras.layers.Conv2D(width, 1, name="c2")(y)
    y = keras.layers.ReLU(name="r2")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(5, name="fc")(y)
    return keras.Model(x, y, name=name)


def _model_table(model, fixed=1.0):
    """A synthetic table for `_tiny`: cost ~ ceil(c_out / 16) * c_in."""
    fingerprint = lt.model_fingerprint(model)
    shapes = {"c1": (3, 32), "c2": (32, 48), "fc": (48, 5)}
    units, entries = [], {}
    for name, (n_in, n_out) in shapes.items():
        outs = sorted({min(n_out, c) for c in (16, 32, 48)})
        ins = sorted({min(n_in, c) for c in (1, 8, 16, 32, 48)})
        tiles = lambda c: math.ceil(c / TILE)  # noqa: E731
        entries[name] = {
            "tile": TILE,
            "out": {"counts": outs,
                    "ms": [0.01 * tiles(c) * n_in for c in outs]},
            "in": {"counts": ins,
                   "ms": [0.01 * tiles(n_out) * c for c in ins]},
        }  # fmt: skip
        units.append({"name": name, "n_in": n_in, "n_out": n_out,
                      "depthwise": False, "entry": name})  # fmt: skip
    full = sum(e["out"]["ms"][-1] for e in entries.values())
    return {
        "format": lt.TABLE_FORMAT,
        "built_for": {
            "model": fingerprint["model"],
            "input_shape": fingerprint["input_shape"],
            "digest": fingerprint["digest"],
            "layers": fingerprint["layers"],
            "runtime": "ai-edge-litert",
            "runtime_version": "2.3.0",
            "threads": 2,
        },
        "dense_ms": full + fixed,
        "fixed_ms": fixed,
        "layers": units,
        "entries": entries,
    }


def test_prune_structured_meets_the_latency_target():
    model = _tiny()
    table = _model_table(model)
    pruned = prune_structured(
        model, criterion="l1", target_latency=0.6, latency_table=table
    )
    pruned.controller.prune(pruned)
    thin = strip_pruning(pruned)
    widths = {
        name: thin.get_layer(name).get_config()["filters"]
        for name in ("c1", "c2")
    }
    groups = [g for g in channel_groups(model) if g.prunable]
    latency = lt.LatencyModel(table, groups)
    counts = pruned.controller.kept_counts(pruned)
    assert latency.share(counts) <= 0.6 + 1e-9
    assert widths == {"c1": counts["c1"], "c2": counts["c2"]}
    assert min(widths.values()) < 32
    # No width is left inside a step: one more channel anywhere costs time
    # (the table's free widths were refilled).
    share = latency.share(counts)
    for g in groups:
        if counts[g.name] < g.size:
            wider = dict(counts, **{g.name: counts[g.name] + 1})
            assert latency.share(wider) > share, g.name
    # The controller (and its table) survives a config round trip.
    config = pruned.controller.get_config()
    assert config["target_latency"] == 0.6
    # (The bound OneShot schedule of a FLOPs or latency target does not
    # reload yet, whatever the target: not what this test checks.)
    clone = type(pruned.controller).from_config({**config, "schedule": None})
    assert clone.latency_table["dense_ms"] == table["dense_ms"]


def test_prune_structured_refuses_a_table_of_another_model():
    table = _model_table(_tiny())
    other = _tiny("other", width=40)
    with pytest.raises(ValueError, match="built for model 'tiny'.*'c2'"):
        prune_structured(
            other, criterion="l1", target_latency=0.5, latency_table=table
        )


def test_check_table_names_runtime_and_threads():
    table = _model_table(_tiny())
    with pytest.raises(ValueError, match="not for threads 4"):
        lt.check_table(table, threads=4)
    with pytest.raises(ValueError, match="not for runtime version '9.9'"):
        lt.check_table(table, runtime_version="9.9")
    bigger = keras.Model(
        *(lambda x: (x, keras.layers.Conv2D(4, 1)(x)))(keras.Input((9, 8, 3)))
    )
    with pytest.raises(ValueError, match="not for input size"):
        lt.check_table(table, fingerprint=lt.model_fingerprint(bigger))


def test_prune_structured_latency_argument_errors():
    model = _tiny()
    table = _model_table(model, fixed=10.0)
    with pytest.raises(ValueError, match="smallest reachable value"):
        prune_structured(
            model, criterion="l1", target_latency=0.2, latency_table=table
        )
    with pytest.raises(ValueError, match="needs `latency_table="):
        prune_structured(model, criterion="l1", target_latency=0.5)
    with pytest.raises(ValueError, match="target_latency"):
        prune_structured(
            model, criterion="l1", target_latency=1.5, latency_table=table
        )
    with pytest.raises(ValueError, match="not both"):
        prune_structured(
            model,
            criterion="l1",
            flops_pruning_ratio=0.5,
            target_latency=0.5,
            latency_table=table,
        )
    with pytest.raises(ValueError, match="must be a latency table"):
        prune_structured(
            model, criterion="l1", target_latency=0.5, latency_table={}
        )


def test_per_group_ranking_keeps_every_group_alive():
    # "a" is narrow and slow per channel: a linear objective would empty
    # it first; the log of the kept shares halves it and thins "b".
    groups = [_group("a", 32, "la"), _group("b", 256, "lb")]
    table = _table({"la": (32, 4.0), "lb": (256, 1.0)})
    model = lt.LatencyModel(table, groups)
    plans = ChannelSelector().plans(groups)
    scores = {"a": np.ones(32), "b": np.ones(256)}
    counts = lt.solve_latency(plans, scores, {}, model, 0.5)
    assert model.share(counts) <= 0.5 + 1e-9
    assert counts["a"] == 16
    assert 96 <= counts["b"] < 256
    shares = lt.kept_importance(plans, scores, counts)
    assert shares == pytest.approx(0.5 * (16 / 32 + counts["b"] / 256))
