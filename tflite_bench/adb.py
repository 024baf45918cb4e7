"""Run TensorFlow Lite's `benchmark_model` on an Android device over adb.

The user supplies the Android `benchmark_model` binary (built from
`tensorflow/lite/tools/benchmark` or downloaded as a nightly
`android_aarch64_benchmark_model`). It is pushed with the .tflite files to
`/data/local/tmp/knp_bench/` and run once per model and round, models
interleaved. CPU runs use XNNPACK (`--use_xnnpack=true`), GPU runs use the
GPU delegate (`--use_gpu=true`); the output is parsed into the same rows as
the host benchmark. See tflite_bench/README.md for the full procedure.
"""

import dataclasses
import os
import re
import shutil
import subprocess

import numpy as np

DEVICE_DIR = "/data/local/tmp/knp_bench"


@dataclasses.dataclass
class DeviceConfig:
    """Settings for `benchmark_model` runs on a device.

    Attributes:
        benchmark_model: local path of the Android `benchmark_model` binary.
        serial: adb serial; None picks the only attached device.
        use_gpu: also run every model with the GPU delegate.
        threads: CPU thread counts.
        warmup_runs / num_runs: passed to `benchmark_model` per call.
        rounds: calls per model and setting (interleaved across models).
        adb: the adb executable.
    """

    benchmark_model: str
    serial: object = None
    use_gpu: bool = False
    threads: tuple = (1, 2, 4)
    warmup_runs: int = 10
    num_runs: int = 50
    rounds: int = 3
    adb: str = "adb"


def device_config(benchmark_model, adb="adb", **settings):
    """A checked `DeviceConfig` for the command-line `--adb` options.

    Args:
        benchmark_model: the `--benchmark-model` path.
        adb: the adb executable.
        **settings: the other `DeviceConfig` fields.

    Raises:
        ValueError: no binary given, or no adb on PATH.
    """
    if not benchmark_model:
        raise ValueError("--adb needs --benchmark-model PATH")
    if not adb_available(adb):
        raise ValueError("--adb given but no `adb` executable on PATH")
    return DeviceConfig(benchmark_model=benchmark_model, adb=adb, **settings)


def adb_available(adb="adb"):
    return shutil.which(adb) is not None


def list_devices(adb="adb"):
    """Serials of attached devices in state `device` (`adb devices`)."""
    out = _run([adb, "devices"])
    serials = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "device":
            serials.append(parts[0])
    return serials


def resolve_serial(config):
    serials = list_devices(config.adb)
    if config.serial is not None:
        if config.serial not in serials:
            raise RuntimeError(
                f"Device {config.serial!r} is not attached (adb devices: "
                f"{serials})."
            )
        return config.serial
    if not serials:
        raise RuntimeError("No Android device attached (`adb devices`).")
    if len(serials) > 1:
        raise RuntimeError(
            f"Several devices attached {serials}; pass --serial."
        )
    return serials[0]


def push_command(adb, serial, local, remote):
    return [adb, "-s", serial, "push", local, remote]


def benchmark_command(
    adb,
    serial,
    remote_binary,
    remote_graph,
    threads=1,
    use_gpu=False,
    warmup_runs=10,
    num_runs=50,
):
    """The `adb shell benchmark_model ...` command for one model."""
    args = [
        remote_binary,
        f"--graph={remote_graph}",
        f"--warmup_runs={warmup_runs}",
        f"--num_runs={num_runs}",
    ]
    if use_gpu:
        args.append("--use_gpu=true")
    else:
        args += [f"--num_threads={threads}", "--use_xnnpack=true"]
    return [adb, "-s", serial, "shell", " ".join(args)]


_STAT_RE = re.compile(r"count=(\d+).*?avg=([\d.eE+-]+)")
_KV_RE = re.compile(r"(\w+)=([\d.eE+-]+)")
_TIMINGS_RE = re.compile(
    r"Inference timings in us:.*?Init: ([\d.]+).*?First inference: ([\d.]+)"
    r".*?Warmup \(avg\): ([\d.]+).*?Inference \(avg\): ([\d.]+)",
    re.S,
)
_DELEGATE_RE = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\)"
)


def parse_benchmark_output(text):
    """Parses the log of TFLite's `benchmark_model`.

    Reads the statistics line of the timed runs (the last
    `count=... avg=... std=... [p5=... median=... p95=...]` line; the
    warm-up line comes before it), the `Inference timings in us` summary
    and, when a delegate was applied, `Replacing X out of Y node(s)`.

    Returns:
        dict with `count`, `avg_us`, `std_us`, `min_us`, `max_us`,
        `median_us` (None in old versions without percentiles), `p95_us`,
        `init_us`, `first_us`, `warmup_avg_us`, `delegated_nodes`,
        `total_nodes`, `delegate`.

    Raises:
        ValueError: no timing statistics in the output (the run failed).
    """
    stats = [line for line in text.splitlines() if _STAT_RE.search(line)]
    if not stats:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise ValueError(f"benchmark_model printed no timings:\n{tail}")
    fields = dict(_KV_RE.findall(stats[-1]))

    def num(key):
        return float(fields[key]) if key in fields else None

    out = {
        "count": int(fields["count"]),
        "avg_us": num("avg"),
        "std_us": num("std"),
        "min_us": num("min"),
        "max_us": num("max"),
        "median_us": num("median"),
        "p95_us": num("p95"),
        "init_us": None,
        "first_us": None,
        "warmup_avg_us": None,
        "delegated_nodes": None,
        "total_nodes": None,
        "delegate": None,
    }
    m = _TIMINGS_RE.search(text)
    if m:
        out["init_us"], out["first_us"], out["warmup_avg_us"] = (
            float(m.group(1)),
            float(m.group(2)),
            float(m.group(3)),
        )
        out["avg_us"] = float(m.group(4))
    delegated = _DELEGATE_RE.findall(text)
    if delegated:
        out["delegated_nodes"] = sum(int(d[0]) for d in delegated)
        out["total_nodes"] = int(delegated[-1][1])
        out["delegate"] = delegated[-1][2]
    return out


def run_on_device(entries, config, log=print):
    """Pushes the family's .tflite files and benchmarks them on a device.

    Args:
        entries: dicts with at least `path` (as built by
            `tflite_bench.suite.run_family`); each returned row copies it.
        config: `DeviceConfig`.

    Returns:
        list of rows with backend "device-cpu-xnnpack" / "device-gpu".
    """
    if not os.path.isfile(config.benchmark_model):
        raise FileNotFoundError(
            "--benchmark-model must be the local path of the Android "
            f"benchmark_model binary. Received: {config.benchmark_model!r}"
        )
    serial = resolve_serial(config)
    adb = config.adb
    remote_bin = f"{DEVICE_DIR}/benchmark_model"
    _run([adb, "-s", serial, "shell", f"mkdir -p {DEVICE_DIR}"])
    _run(push_command(adb, serial, config.benchmark_model, remote_bin))
    _run([adb, "-s", serial, "shell", f"chmod +x {remote_bin}"])
    remote = []
    for e in entries:
        target = f"{DEVICE_DIR}/{os.path.basename(e['path'])}"
        _run(push_command(adb, serial, e["path"], target))
        remote.append(target)

    settings = [("device-cpu-xnnpack", t, False) for t in config.threads]
    if config.use_gpu:
        settings.append(("device-gpu", 0, True))
    rows = []
    for backend, threads, use_gpu in settings:
        per_model = [[] for _ in entries]
        for _ in range(config.rounds):
            for i, graph in enumerate(remote):
                cmd = benchmark_command(
                    adb,
                    serial,
                    remote_bin,
                    graph,
                    threads=threads,
                    use_gpu=use_gpu,
                    warmup_runs=config.warmup_runs,
                    num_runs=config.num_runs,
                )
                per_model[i].append(parse_benchmark_output(_run(cmd)))
        for e, runs in zip(entries, per_model):
            rows.append(
                {**e, **_combine(runs), "backend": backend, "threads": threads}
            )
        log(
            f"  {backend} threads={threads}: "
            + ", ".join(
                f"{e['model']}={r['median_ms']:.2f}ms"
                for e, r in zip(entries, rows[-len(entries) :])
            )
        )
    return rows


def _combine(runs):
    """Median over rounds of each round's median (or average)."""
    centre = [r["median_us"] or r["avg_us"] for r in runs]
    p95 = [r["p95_us"] for r in runs if r["p95_us"] is not None]
    last = runs[-1]
    return {
        "median_ms": float(np.median(centre)) / 1e3,
        "p90_ms": None,
        "p95_ms": float(np.median(p95)) / 1e3 if p95 else None,
        "mean_ms": float(np.mean([r["avg_us"] for r in runs])) / 1e3,
        "min_ms": float(min(r["min_us"] or r["avg_us"] for r in runs)) / 1e3,
        "std_ms": float(np.mean([r["std_us"] or 0.0 for r in runs])) / 1e3,
        "runs": int(sum(r["count"] for r in runs)),
        "delegated_nodes": last["delegated_nodes"],
        "total_nodes": last["total_nodes"],
    }


def _run(cmd):
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout + proc.stderr
