"""Builds model families (dense + pruned), exports and times them."""

import dataclasses
import gc
import os
import time

from tflite_bench import models as suite_models
from tflite_bench.base_benchmark import tflite_accuracy
from tflite_bench.base_benchmark import time_interleaved
from tflite_bench.variants import variants


@dataclasses.dataclass
class BenchConfig:
    """Everything one benchmark run needs.

    Attributes:
        models: suite model names, or paths to .keras files.
        ratios: pruning ratios besides the dense model (0).
        round_tos: `round_to` values for each ratio (1 = no rounding).
        criteria: criterion names (`keras_neuronprune.criteria`); each is
            also benchmarked at every ratio and `round_to`, pruned one-shot
            with `prune_structured` (see `tflite_bench.variants`).
        threads: interpreter thread counts.
        warmup / rounds / runs_per_round: timing schedule (see
            `base_benchmark.time_interleaved`).
        resolution: input size override for the suite models.
        quick: small models / low resolution for CI.
        results_dir: where CSV / JSON / markdown / plot / .tflite go.
        data: optional (x, y) arrays for accuracy.
        device: optional `tflite_bench.adb.DeviceConfig` to also run
            `benchmark_model` on an Android device.
        host: time on this machine with the LiteRT interpreter.
        verbose: 1 shows progress bars for the timing rounds and the
            accuracy pass, 0 only the one-line log per model.
    """

    models: tuple = suite_models.FULL_SUITE
    ratios: tuple = (0.25, 0.5, 0.75)
    round_tos: tuple = (1, 8)
    criteria: tuple = ("l1", "taylor")
    threads: tuple = (1, 2, 4)
    warmup: int = 5
    rounds: int = 10
    runs_per_round: int = 5
    resolution: object = None
    quick: bool = False
    results_dir: str = "results/tflite_bench"
    data: object = None
    device: object = None
    host: bool = True
    verbose: int = 1

    @classmethod
    def quick_config(cls, results_dir="results/tflite_bench_quick"):
        """Couple-of-minutes CI settings."""
        return cls(
            models=suite_models.QUICK_SUITE,
            ratios=(0.5,),
            round_tos=(1, 8),
            criteria=("taylor",),
            threads=(1, 2),
            warmup=2,
            rounds=3,
            runs_per_round=5,
            quick=True,
            results_dir=results_dir,
        )


def load_family(name, config):
    """Returns (family name, description, dense keras model)."""
    import keras

    if name.endswith(".keras"):
        try:
            import keras_neuronprune  # noqa: F401  (registers layers)
        except ImportError:
            pass
        model = keras.saving.load_model(name, compile=False)
        family = os.path.splitext(os.path.basename(name))[0]
        return family, f"{model.name} (from {name})", model
    model, desc = suite_models.build(
        name, resolution=config.resolution, quick=config.quick
    )
    return name, desc, model


def run_family(name, config, log=print):
    """Exports and times one family; returns its result rows."""
    import keras

    from keras_neuronprune import count_cost
    from keras_neuronprune.export import tflite
    from keras_neuronprune.export._flatbuffer import count_macs
    from keras_neuronprune.export._flatbuffer import read_tflite

    family, desc, dense = load_family(name, config)
    model_dir = os.path.join(config.results_dir, "models", family)
    os.makedirs(model_dir, exist_ok=True)
    log(f"[{family}] {desc}")
    entries = []
    for label, ratio, round_to, criterion, model in variants(
        dense,
        config.ratios,
        config.round_tos,
        criteria=config.criteria,
        data=config.data,
    ):
        t0 = time.time()
        cost = count_cost(model)
        path = os.path.join(model_dir, f"{family}_{label}.tflite")
        # The export itself checks numerics: the .tflite output must match
        # this (pruned) Keras model, or it raises ExportParityError.
        result = tflite(model, path, parity_samples=2)
        info = read_tflite(path)
        entry = {
            "family": family,
            "description": desc,
            "model": label,
            "ratio": ratio,
            "round_to": round_to,
            "criterion": criterion,
            "path": path,
            "params": int(cost.params),
            "flops": int(cost.flops),
            "tflite_macs": count_macs(info),
            "size_bytes": result.size_bytes,
            "max_abs_diff": result.parity.max_abs_diff,
            "parity_passed": result.parity.passed,
            "gpu_compatible": result.gpu.compatible,
            "odd_channel_convs": _odd_channel_convs(info),
            "accuracy": None,
        }
        if config.data is not None:
            x, y = config.data
            entry["accuracy"] = tflite_accuracy(
                path, x, y, verbose=config.verbose
            )
        entries.append(entry)
        log(
            f"  {label:>10}: params={cost.params / 1e6:.3f}M "
            f"flops={cost.flops / 1e9:.3f}G size={result.size_bytes / 1e6:.2f}"
            f"MB parity max|diff|={result.parity.max_abs_diff:.2e} "
            f"({time.time() - t0:.1f}s)"
        )
        if model is not dense:
            del model
    del dense
    keras.backend.clear_session()
    gc.collect()

    return time_entries(entries, config, log=log)


def time_entries(entries, config, log=print):
    """Times exported variants of one family (host and/or device)."""
    rows = []
    paths = [e["path"] for e in entries]
    if config.host:
        for threads in config.threads:
            stats = time_interleaved(
                paths,
                threads,
                warmup=config.warmup,
                rounds=config.rounds,
                runs_per_round=config.runs_per_round,
                verbose=config.verbose,
            )
            for entry, s in zip(entries, stats):
                rows.append(
                    {
                        **entry,
                        "backend": "host-xnnpack",
                        "threads": threads,
                        **dataclasses.asdict(s),
                    }
                )
            log(
                f"  threads={threads}: "
                + ", ".join(
                    f"{e['model']}={s.median_ms:.2f}ms"
                    for e, s in zip(entries, stats)
                )
            )
    if config.device is not None:
        from tflite_bench.adb import run_on_device

        rows.extend(run_on_device(entries, config.device, log=log))
    return rows


def _odd_channel_convs(info):
    """Convolutions whose output channels are not a multiple of 8."""
    sg = info.subgraphs[0]
    count = 0
    for op in sg.operators:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and op.outputs:
            shape = sg.tensors[op.outputs[0]].shape
            if shape and shape[-1] % 8:
                count += 1
    return count


ENTRY_KEYS = (
    "family",
    "description",
    "model",
    "ratio",
    "round_to",
    "criterion",
    "path",
    "params",
    "flops",
    "tflite_macs",
    "size_bytes",
    "max_abs_diff",
    "parity_passed",
    "gpu_compatible",
    "odd_channel_convs",
    "accuracy",
)


def retime(results_json, config, log=print):
    """Times the .tflite files of an earlier run again (no re-export).

    Useful for tighter numbers (more rounds, one thread count) on models
    that were already exported and numerically checked.

    Returns:
        dict of written file paths.
    """
    import json

    from tflite_bench import report

    with open(results_json) as f:
        old_rows = json.load(f)["rows"]
    families = {}
    for r in old_rows:
        if config.models and r["family"] not in config.models:
            continue
        fam = families.setdefault(r["family"], {})
        fam.setdefault(r["model"], {k: r.get(k) for k in ENTRY_KEYS})
    if not families:
        raise ValueError(
            f"No rows to re-time in {results_json!r} for models "
            f"{list(config.models)}."
        )
    os.makedirs(config.results_dir, exist_ok=True)
    started = time.time()
    rows = []
    for family, entries in families.items():
        entries = list(entries.values())
        missing = [e["path"] for e in entries if not os.path.exists(e["path"])]
        if missing:
            raise FileNotFoundError(f"Exported models are gone: {missing}")
        log(f"[{family}] re-timing {len(entries)} models")
        rows.extend(time_entries(entries, config, log=log))
    rows = report.finalize(rows)
    meta = report.environment(config, time.time() - started)
    meta["retimed_from"] = results_json
    return report.write_all(rows, meta, config.results_dir)


def run(config, log=print):
    """Runs every family of `config` and writes the reports.

    Returns:
        dict of written file paths (csv, json, markdown, plot).
    """
    from tflite_bench import report

    os.makedirs(config.results_dir, exist_ok=True)
    rows = []
    started = time.time()
    for name in config.models:
        rows.extend(run_family(name, config, log=log))
    rows = report.finalize(rows)
    meta = report.environment(config, time.time() - started)
    return report.write_all(rows, meta, config.results_dir)
