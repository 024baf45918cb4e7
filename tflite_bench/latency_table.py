"""Latency tables: each layer's latency vs its kept channels, measured.

`prune_structured(..., target_latency=0.5, latency_table=path)` prunes to a
measured latency instead of a FLOP count. The table it needs is built
here, on the deployment runtime (the LiteRT interpreter with XNNPACK at a
given thread count, on this machine):

```
python -m tflite_bench latency-table --model mobilenetv2 --threads 2 \\
    --output results/latency/mobilenetv2_224_t2.json
```

What is measured: every Conv / DepthwiseConv / Dense layer touched by a
prunable channel group becomes a one-layer model (its own config, its
input size) exported with `keras_neuronprune.export.tflite`, at a few kept
output widths (all inputs kept) and a few kept input widths (all outputs
kept), sampled at multiples of the runtime's channel tile (the widths
where the latency steps; see `tflite_bench.widths`) plus the full width.
Layers of the same class, config and shape share their samples. All unit
models, an empty model (the per-invoke overhead, subtracted) and the
dense model itself are timed interleaved with
`tflite_bench.base_benchmark.time_interleaved`. The interpreter's
per-invoke overhead is the table's `fixed_ms`; what the units timed alone
do not explain inside the model (elementwise layers such as residual Adds
and paddings, activations that no longer fit the cache) is spread over
them in proportion: `unit_scale` = (dense - overhead) / units at full
width.

Predicted latency of a layer at (c_in, c_out) is `out(c_out) * in(c_in) /
full` (see `keras_neuronprune.pruning._latency_target.LatencyModel`);
widths that are not a multiple of the tile cost as much as the next one.
Measured samples are made non-decreasing in the width (timing noise never
makes a narrower layer look slower than a wider one; see
`non_decreasing`).

The JSON file records what it was built for (the model's layer names and
shapes, the runtime and its version, the thread count, the input size);
`load` and `prune_structured` refuse it for another model, runtime or
thread count, saying which differs.
"""

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import time

import numpy as np

from keras_neuronprune.pruning._latency_target import TABLE_FORMAT
from keras_neuronprune.pruning._latency_target import LatencyModel
from keras_neuronprune.pruning._latency_target import check_table
from keras_neuronprune.pruning._latency_target import load_table
from keras_neuronprune.pruning._latency_target import model_fingerprint
from tflite_bench._args import int_at_least

RUNTIME = "ai-edge-litert"
DEVICE_RUNTIME = "benchmark_model (adb)"
DELEGATE = "XNNPACK"
CONV_UNITS = ("Conv1D", "Conv2D")
DEPTHWISE_UNITS = ("DepthwiseConv1D", "DepthwiseConv2D")
DENSE_UNITS = ("Dense",)
# Timed interpreters alive at once (memory of the larger unit models).
_BATCH = 48


def runtime_version():
    """The installed LiteRT (`ai-edge-litert`) version."""
    from importlib import metadata

    try:
        return metadata.version(RUNTIME)
    except metadata.PackageNotFoundError:
        return None


def non_decreasing(ms):
    """Latencies made non-decreasing in the kept width, full width fixed.

    A layer with fewer channels is never slower; a sample that timing
    noise made slower than a wider one is lowered to the wider one's
    latency (the running minimum from the full width down), so the
    table never rewards keeping more channels.
    """
    return [float(v) for v in np.minimum.accumulate(np.asarray(ms)[::-1])[::-1]]


def sample_counts(size, tile, samples=4):
    """Widths to measure for a layer of `size` channels.

    Multiples of `tile`: 1, 2, 4 and 8 tiles (small widths, where fixed
    per-tile costs show) and `samples` evenly spread ones,
    plus `size` itself.

    Args:
        size: full width.
        tile: the runtime's channel tile.
        samples: evenly spread samples besides the powers of two.

    Returns:
        Sorted list of ints in [1, size].
    """
    counts = {size}
    t = tile
    while t < min(size, 8 * tile):
        counts.add(t)
        t *= 2
    for x in np.linspace(0, size, samples + 1)[1:]:
        counts.add(min(size, int(math.ceil(x / tile) * tile)))
    return sorted(c for c in counts if 1 <= c <= size)


def detect_tile(threads, work_dir, log=print):
    """Channel tile per layer kind on this runtime (`widths` sweep).

    Returns:
        dict kind ("pointwise", "depthwise", "conv3x3") -> tile.
    """
    from tflite_bench import widths

    rows = widths.sweep(
        channels=(16, 20, 24, 28, 32, 40, 48, 64),
        resolution=56,
        threads=(threads,),
        work_dir=os.path.join(work_dir, "tile_probe"),
        warmup=3,
        rounds=8,
        runs_per_round=5,
        log=log,
    )
    return widths.suggest_round_to(rows)[threads]


def _unit_kind(layer):
    """ "pointwise" / "conv3x3" / "depthwise" / "dense", or None."""
    name = type(layer).__name__
    config = layer.get_config()
    if name in CONV_UNITS:
        if config.get("groups", 1) != 1:
            return None
        kernel = tuple(config.get("kernel_size", (1,)))
        return "pointwise" if all(k == 1 for k in kernel) else "conv3x3"
    if name in DEPTHWISE_UNITS:
        return "depthwise" if config.get("depth_multiplier", 1) == 1 else None
    if name in DENSE_UNITS:
        return "dense"
    return None


def latency_units(model, groups, input_shape=None):
    """The layers a table measures, with their widths and shape keys.

    Args:
        model: the dense Keras model.
        groups: its prunable `ChannelGroup`s.
        input_shape: costing shape (models with undefined dimensions).

    Returns:
        (units, unmodeled): `units` is a list of dicts ("name", "class",
        "kind", "n_in", "n_out", "input_shape", "entry"); `unmodeled` the
        names of layers touched by a group that no unit models (their
        cost stays in `fixed_ms`).
    """
    from keras_neuronprune import count_cost
    from keras_neuronprune.core.surgery import find_layer

    touched = {m.layer for g in groups for m in g.members}
    units, unmodeled = [], []
    for row in count_cost(model, input_shape=input_shape).layers:
        if row.name not in touched or not row.flops:
            continue
        layer = find_layer(model, row.name)
        kind = _unit_kind(layer)
        if kind is None:
            if "Conv" in row.class_name or "Dense" in row.class_name:
                unmodeled.append(row.name)
            continue
        config = layer.get_config()
        in_shape = list(row.input_shapes[0])[1:]
        n_in, n_out = int(row.channels_in), int(row.channels_out)
        key_config = {k: v for k, v in config.items() if not _weight_setting(k)}
        entry = json.dumps(
            [type(layer).__name__, key_config, in_shape, n_out],
            sort_keys=True,
            default=str,
        )
        units.append(
            {
                "name": row.name,
                "class": type(layer).__name__,
                "kind": kind,
                "n_in": n_in,
                "n_out": n_out,
                "input_shape": in_shape,
                "depthwise": kind == "depthwise",
                "entry": entry,
            }
        )
    return units, unmodeled


def _weight_setting(key):
    """Config keys that do not change a layer's latency."""
    return key in ("name", "trainable", "dtype") or any(
        w in key for w in ("initializer", "regularizer", "constraint")
    )


def unit_model(layer, input_shape, c_in, c_out):
    """One-layer model of `layer`'s class and config at (c_in, c_out)."""
    import keras

    config = dict(layer.get_config())
    config["name"] = "unit"
    if "filters" in config:
        config["filters"] = int(c_out)
    if "units" in config:
        config["units"] = int(c_out)
    shape = tuple(input_shape[:-1]) + (int(c_in),)
    inputs = keras.Input(shape, batch_size=1, name="x")
    clone = type(layer).from_config(config)
    return keras.Model(inputs, clone(inputs))


def _overhead_model():
    import keras

    inputs = keras.Input((1,), batch_size=1, name="x")
    return keras.Model(inputs, keras.layers.Dense(1, name="unit")(inputs))


def _export_units(model, units, tiles, samples, work_dir):
    """Exports the unit models; returns (entries, jobs)."""
    import keras

    from keras_neuronprune.core.surgery import find_layer
    from keras_neuronprune.export import tflite

    entries = {}
    jobs = []  # (entry key, "out" | "in", count, path)
    for unit in units:
        key = unit["entry"]
        if key in entries:
            continue
        t = int(tiles.get(unit["kind"], 1))
        layer = find_layer(model, unit["name"])
        n_in, n_out = unit["n_in"], unit["n_out"]
        entries[key] = {
            "tile": t,
            "kind": unit["kind"],
            "layer": unit["name"],
            "n_in": n_in,
            "n_out": n_out,
        }
        plan = [("out", c, c if unit["depthwise"] else n_in, c)
                for c in sample_counts(n_out, t, samples)]  # fmt: skip
        if not unit["depthwise"]:
            # Input widths have no tile steps on XNNPACK's GEMMs, but
            # narrow inputs need finer samples to show their slope.
            t_in = max(1, t // 4) if n_in <= 4 * t else t
            plan += [
                ("in", c, c, n_out)
                for c in sample_counts(n_in, t_in, samples)
                if c != n_in
            ]
        for side, count, c_in, c_out in plan:
            index = len(jobs)
            path = os.path.join(work_dir, f"unit_{index:04d}.tflite")
            m = unit_model(layer, unit["input_shape"], c_in, c_out)
            tflite(m, path, parity_samples=1)
            jobs.append((key, side, count, path))
        keras.backend.clear_session()
    return entries, jobs


def _time_models(paths, threads, device, repeats, log):
    """Median latency (ms) of each .tflite file, timed interleaved.

    Args:
        paths: the model files.
        threads: XNNPACK threads.
        device: None (this host's LiteRT interpreter) or a
            `tflite_bench.adb.DeviceConfig`.
        repeats: (warmup, rounds, runs_per_round); on a device `rounds`
            calls of `benchmark_model` per model.
        log: progress printer.
    """
    warmup, rounds, runs_per_round = repeats
    if device is None:
        from tflite_bench.base_benchmark import time_interleaved

        stats = time_interleaved(
            paths,
            threads,
            warmup=warmup,
            rounds=rounds,
            runs_per_round=runs_per_round,
        )
        return [s.median_ms for s in stats]
    from tflite_bench.adb import run_on_device

    config = dataclasses.replace(
        device, threads=(threads,), use_gpu=False, rounds=rounds
    )
    entries = [{"model": os.path.basename(p), "path": p} for p in paths]
    rows = run_on_device(entries, config, log=log)
    return [r["median_ms"] for r in rows]


def build_table(
    model,
    threads=2,
    tile=None,
    samples=4,
    work_dir="results/latency_table/models",
    warmup=3,
    rounds=5,
    runs_per_round=5,
    input_shape=None,
    allow_inexact=False,
    log=print,
    device=None,
):
    """Measures the latency table of `model` on LiteRT / XNNPACK.

    Args:
        model: the dense functional Keras model (not modified).
        threads: interpreter threads (the table is valid for this count).
        tile: the runtime's channel tile: an int, a dict kind -> int
            ("pointwise", "conv3x3", "depthwise"; dense layers use the
            pointwise one) or None to detect it with a small
            `tflite_bench.widths` sweep.
        samples: evenly spread widths per dimension (see `sample_counts`).
        work_dir: folder of the exported unit models.
        warmup, rounds, runs_per_round: see `time_interleaved`.
        input_shape: costing shape for models with undefined dimensions.
        allow_inexact: also measure inexact groups.
        log: progress printer.
        device: a `tflite_bench.adb.DeviceConfig` to time every unit model
            with `benchmark_model` on an Android device over adb (XNNPACK
            at `threads`; `tile` must then be given); None times them on
            this host.

    Returns:
        A `LatencyTable`.
    """

    from keras_neuronprune import channel_groups
    from keras_neuronprune.export import tflite

    check_threads = int_at_least(1)
    threads = check_threads(str(threads))
    started = time.time()
    if device is not None and tile is None:
        raise ValueError(
            "A table measured on a device needs the device's channel tile "
            "(`tile`, `--tile`): tile detection times the host. "
            "Received: tile=None"
        )
    os.makedirs(work_dir, exist_ok=True)
    if tile is None:
        tiles = detect_tile(threads, work_dir, log=log)
        log(f"  channel tiles: {tiles}")
    elif isinstance(tile, dict):
        tiles = dict(tile)
    else:
        tiles = {k: int(tile) for k in ("pointwise", "conv3x3", "depthwise")}
    tiles.setdefault("dense", tiles.get("pointwise", 1))
    groups = [
        g
        for g in channel_groups(model, allow_inexact=allow_inexact)
        if g.prunable
    ]
    units, unmodeled = latency_units(model, groups, input_shape)
    # The converter calls gc.collect() on every export; frozen, the
    # objects alive now (the model, TensorFlow) are not walked each time.
    gc.freeze()
    try:
        entries, jobs = _export_units(model, units, tiles, samples, work_dir)
    finally:
        gc.unfreeze()
    log(
        f"  exported {len(jobs)} unit models for {len(entries)} layer "
        f"shapes ({len(units)} layers) in {time.time() - started:.0f}s"
    )
    overhead_path = os.path.join(work_dir, "overhead.tflite")
    tflite(_overhead_model(), overhead_path, parity_samples=1)
    dense_path = os.path.join(work_dir, "dense.tflite")
    tflite(model, dense_path, parity_samples=1)

    medians = [None] * len(jobs)
    overheads, dense = [], []
    # The host keeps _BATCH interpreters alive at once; a device run pushes
    # every model and interleaves them all.
    batch_size = len(jobs) if device is not None else _BATCH
    for start in range(0, len(jobs), max(batch_size, 1)):
        batch = list(range(start, min(len(jobs), start + batch_size)))
        ms = _time_models(
            [jobs[i][3] for i in batch] + [overhead_path, dense_path],
            threads,
            device,
            (warmup, rounds, runs_per_round),
            log,
        )
        overhead = ms[-2]
        overheads.append(overhead)
        dense.append(ms[-1])
        for i, value in zip(batch, ms):
            medians[i] = max(value - overhead, 1e-4)
    for (key, side, count, _), ms in zip(jobs, medians):
        entry = entries[key]
        entry.setdefault(side, {"counts": [], "ms": []})
        entry[side]["counts"].append(int(count))
        entry[side]["ms"].append(float(ms))
    for key, entry in entries.items():
        for side in ("out", "in"):
            if side in entry:
                order = np.argsort(entry[side]["counts"])
                for k in ("counts", "ms"):
                    entry[side][k] = [entry[side][k][i] for i in order]
        full = entry["out"]["ms"][-1]
        entry["full_ms"] = full
        if "in" in entry:
            entry["in"]["counts"].append(entry["n_in"])
            entry["in"]["ms"].append(full)
        for side in ("out", "in"):
            if side in entry:
                entry[side]["ms"] = non_decreasing(entry[side]["ms"])
    dense_ms = float(np.median(dense))
    overhead_ms = min(float(np.median(overheads)), dense_ms)
    units_ms = sum(entries[u["entry"]]["full_ms"] for u in units)
    fingerprint = model_fingerprint(model, input_shape)
    table = {
        "format": TABLE_FORMAT,
        "built_for": {
            "model": fingerprint["model"],
            "input_shape": fingerprint["input_shape"],
            "digest": fingerprint["digest"],
            "layers": fingerprint["layers"],
            "runtime": RUNTIME if device is None else DEVICE_RUNTIME,
            "runtime_version": runtime_version()
            if device is None
            else os.path.basename(device.benchmark_model),
            "delegate": DELEGATE,
            "threads": threads,
            "machine": f"{platform.platform()} ({os.cpu_count()} CPUs)"
            if device is None
            else f"adb device {device.serial or 'attached'}",
        },
        "tiles": tiles,
        "dense_ms": dense_ms,
        "overhead_ms": overhead_ms,
        "units_ms": units_ms,
        "fixed_ms": overhead_ms,
        "unit_scale": (dense_ms - overhead_ms) / max(units_ms, 1e-9),
        "layers": [
            {
                k: u[k]
                for k in (
                    "name",
                    "class",
                    "kind",
                    "n_in",
                    "n_out",
                    "depthwise",
                    "entry",
                )
            }
            for u in units
        ],  # fmt: skip
        "entries": entries,
        "unmodeled": unmodeled,
        "settings": {
            "samples": samples,
            "warmup": warmup,
            "rounds": rounds,
            "runs_per_round": runs_per_round,
            "unit_models": len(jobs),
            "elapsed_s": round(time.time() - started, 1),
        },
    }
    log(
        f"  timed: dense {dense_ms:.2f} ms, units at full width "
        f"{units_ms:.2f} ms (scaled by {table['unit_scale']:.2f} to the "
        f"dense model), invoke overhead {overhead_ms:.3f} ms "
        f"({time.time() - started:.0f}s in all)"
    )
    return LatencyTable(table)


class LatencyTable:
    """A measured latency table (see the module docstring).

    Args:
        table: the table dict (as written by `save`).

    Example:

    ```python
    table = LatencyTable.load("mobilenetv2_t2.json", model=model,
                              threads=2)
    pruned = keras_neuronprune.prune_structured(
        model, criterion="l1", target_latency=0.5, latency_table=table)
    ```
    """

    def __init__(self, table):
        self.table = load_table(table)

    def to_dict(self):
        return self.table

    @property
    def built_for(self):
        return self.table["built_for"]

    @property
    def dense_ms(self):
        return float(self.table["dense_ms"])

    def save(self, path):
        """Writes the table as JSON; returns the path."""
        folder = os.path.dirname(str(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.table, f)
        return path

    @classmethod
    def load(
        cls, path, model=None, threads=None, runtime=RUNTIME, version=None,
        input_shape=None,
    ):  # fmt: skip
        """Reads a table and refuses it when built for something else.

        Args:
            path: the JSON file (or a table dict).
            model: the model it will prune (its layer names and shapes must
                match); None skips the check.
            threads: the thread count it will run at; None skips it.
            runtime: the runtime name (`DEVICE_RUNTIME` for tables timed
                on a device with `--adb`); None skips it.
            version: the runtime version; None: the installed LiteRT for
                `RUNTIME`, unchecked otherwise.
            input_shape: costing shape of models with undefined dimensions.

        Raises:
            ValueError: naming what differs.
        """
        table = cls(path)
        check_table(
            table.table,
            fingerprint=None
            if model is None
            else model_fingerprint(model, input_shape),
            runtime=runtime,
            runtime_version=version
            or (runtime_version() if runtime == RUNTIME else None),
            threads=threads,
        )
        return table

    def group_curves(self, model, groups=None):
        """Per group: predicted latency (ms) vs its kept count, others whole.

        Returns:
            dict group name -> (counts, ms) arrays at multiples of the
            pointwise tile (and the full size).
        """
        from keras_neuronprune import channel_groups

        if groups is None:
            groups = [g for g in channel_groups(model) if g.prunable]
        latency = LatencyModel(self.table, groups)
        tile = int(self.table["tiles"].get("pointwise", 1))
        curves = {}
        for i, g in enumerate(groups):
            counts = sample_counts(g.size, tile, samples=8)
            kept = latency.sizes.copy()
            ms = []
            for c in counts:
                kept[i] = c
                ms.append(latency.predict(kept))
            curves[g.name] = (np.array(counts), np.array(ms))
        return curves


def markdown(table, model=None):
    """A short report: what it was built for and the costliest groups."""
    built = table.table["built_for"]
    lines = [
        "# latency table",
        "",
        f"- model {built['model']!r}, input {built['input_shape']}; "
        f"{built['runtime']} {built['runtime_version']} "
        f"({built['delegate']}), {built['threads']} thread(s); "
        f"{built['machine']}",
        f"- dense {table.dense_ms:.2f} ms; measured layers at full width "
        f"{table.table['units_ms']:.2f} ms (unit_scale "
        f"{table.table.get('unit_scale', 1.0):.2f}); invoke overhead "
        f"{table.table['fixed_ms']:.3f} ms; channel tiles "
        f"{table.table['tiles']}",
        f"- {table.table['settings']['unit_models']} unit models, "
        f"{table.table['settings']['elapsed_s']} s; layers not modelled: "
        f"{len(table.table['unmodeled'])}",
        "",
    ]
    if model is not None:
        curves = table.group_curves(model)
        dense = table.dense_ms
        rows = []
        for name, (counts, ms) in curves.items():
            saving = ms[-1] - ms[0]
            rows.append((saving, name, counts, ms))
        rows.sort(reverse=True)
        lines += [
            "| group | size | ms saved at the smallest width | "
            "latency share at 25/50/75% kept |",
            "|---|---|---|---|",
        ]
        for saving, name, counts, ms in rows[:15]:
            size = counts[-1]
            shares = [
                np.interp(f * size, counts, ms) / dense
                for f in (0.25, 0.5, 0.75)
            ]
            lines.append(
                f"| {name} | {size} | {saving:.3f} | "
                + " / ".join(f"{s:.3f}" for s in shares)
                + " |"
            )
    return "\n".join(lines)


_positive_int = int_at_least(1)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tflite_bench latency-table",
        description=(
            "Measure a model's latency table (layer latency vs kept "
            "channels) on the LiteRT interpreter (XNNPACK), for "
            "prune_structured(..., target_latency=, latency_table=)."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        help="suite model (mobilenetv2 resnet50 efficientnetb0 resnet20) "
        "or a .keras file",
    )
    p.add_argument("--threads", type=_positive_int, default=2)
    p.add_argument("--resolution", type=_positive_int, default=None)
    p.add_argument(
        "--tile",
        type=_positive_int,
        default=None,
        help="the runtime's channel tile (default: measured)",
    )
    p.add_argument("--samples", type=_positive_int, default=4)
    p.add_argument("--warmup", type=int_at_least(0), default=3)
    p.add_argument("--rounds", type=_positive_int, default=5)
    p.add_argument("--runs-per-round", type=_positive_int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--output", required=True, help="the table's .json path")
    dev = p.add_argument_group("Android device (adb)")
    dev.add_argument(
        "--adb",
        action="store_true",
        help="time the unit models with benchmark_model on an attached "
        "device instead of this host (needs --tile)",
    )
    dev.add_argument(
        "--benchmark-model",
        help="local path of the Android benchmark_model binary",
    )
    dev.add_argument("--serial", help="adb device serial")
    dev.add_argument("--device-runs", type=_positive_int, default=50)
    return p


def load_model(name, resolution=None, quick=False):
    """(family, description, model) of a suite name or a .keras file."""
    from tflite_bench import suite

    config = suite.BenchConfig(
        models=(name,), resolution=resolution, quick=quick
    )
    return suite.load_family(name, config)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    device = None
    if args.adb:
        from tflite_bench.adb import device_config

        if args.tile is None:
            parser.error("--adb needs --tile (tile detection times the host)")
        try:
            device = device_config(
                args.benchmark_model,
                serial=args.serial,
                threads=(args.threads,),
                num_runs=args.device_runs,
                rounds=args.rounds,
            )
        except ValueError as error:
            parser.error(str(error))
    family, desc, model = load_model(args.model, args.resolution, args.quick)
    print(f"[{family}] {desc}")
    work_dir = os.path.splitext(args.output)[0] + "_models"
    table = build_table(
        model,
        threads=args.threads,
        tile=args.tile,
        samples=args.samples,
        work_dir=work_dir,
        warmup=args.warmup,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
        device=device,
    )
    table.save(args.output)
    print()
    print(markdown(table, model))
    print(f"table: {args.output}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
