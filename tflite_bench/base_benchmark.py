"""Shared timing code: interleaved LiteRT (XNNPACK) latency measurement.

Timings on a shared machine drift (other jobs, frequency scaling), so the
baseline and its pruned versions are always timed in the same run and
interleaved: every round visits every model (in a shuffled order) for a
short block of invocations, so slow phases hit all models alike.
"""

import dataclasses
import random
import time

import numpy as np

from keras_neuronprune.criteria.base_criterion import progress


@dataclasses.dataclass
class LatencyStats:
    """Per-invocation latency statistics in milliseconds."""

    median_ms: float
    p90_ms: object
    mean_ms: float
    min_ms: float
    std_ms: float
    runs: int
    p95_ms: object = None
    cpu_median_ms: object = None
    cpu_p90_ms: object = None

    @classmethod
    def from_seconds(cls, samples, cpu_samples=None):
        """Stats from wall-clock seconds (and optional process CPU seconds).

        Process CPU time counts the work of all the process's threads and
        excludes time the process was preempted, so on a shared machine it
        is a steadier measure of the work per inference than wall time (for
        one thread it is the uncontended latency; for N threads it is up to
        N x the latency).
        """
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("No latency samples were recorded.")
        cpu = None
        if cpu_samples is not None:
            cpu = np.asarray(cpu_samples, dtype=np.float64) * 1e3
        return cls(
            median_ms=float(np.median(ms)),
            p90_ms=float(np.percentile(ms, 90)),
            mean_ms=float(np.mean(ms)),
            min_ms=float(np.min(ms)),
            std_ms=float(np.std(ms)),
            runs=int(ms.size),
            p95_ms=float(np.percentile(ms, 95)),
            cpu_median_ms=None if cpu is None else float(np.median(cpu)),
            cpu_p90_ms=None if cpu is None else float(np.percentile(cpu, 90)),
        )


def make_interpreter(path, num_threads):
    """LiteRT interpreter with its default resolver, which applies XNNPACK."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interpreter.get_input_details():
        dtype = np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(d["shape"]).astype(dtype)
        else:
            value = rng.integers(-5, 5, size=d["shape"]).astype(dtype)
        interpreter.set_tensor(d["index"], value)
    return interpreter


def time_interleaved(
    paths,
    num_threads,
    warmup=5,
    rounds=10,
    runs_per_round=5,
    seed=0,
    verbose=0,
):
    """Times several .tflite models in one interleaved run.

    Args:
        paths: .tflite files (typically a dense model and its pruned
            versions).
        num_threads: interpreter threads.
        warmup: untimed invocations per model before timing.
        rounds: number of rounds; each round times every model once.
        runs_per_round: timed invocations per model per round.
        seed: seed of the per-round model order shuffle.
        verbose: 1 shows a progress bar over the rounds, 0 is silent.

    Returns:
        list of `LatencyStats`, one per path.
    """
    if rounds < 1 or runs_per_round < 1:
        raise ValueError(
            "`rounds` and `runs_per_round` must be >= 1. Received: "
            f"rounds={rounds}, runs_per_round={runs_per_round}"
        )
    interpreters = [make_interpreter(p, num_threads) for p in paths]
    for interp in interpreters:
        for _ in range(warmup):
            interp.invoke()
    samples = [[] for _ in paths]
    cpu_samples = [[] for _ in paths]
    order = list(range(len(paths)))
    rng = random.Random(seed)
    clock = time.perf_counter
    cpu_clock = time.process_time
    for _ in progress(range(rounds), verbose, "round"):
        rng.shuffle(order)
        for i in order:
            invoke = interpreters[i].invoke
            bucket = samples[i]
            cpu_bucket = cpu_samples[i]
            for _ in range(runs_per_round):
                cpu_start = cpu_clock()
                start = clock()
                invoke()
                end = clock()
                cpu_bucket.append(cpu_clock() - cpu_start)
                bucket.append(end - start)
    return [
        LatencyStats.from_seconds(s, c) for s, c in zip(samples, cpu_samples)
    ]


def tflite_accuracy(path, x, y, num_threads=1, verbose=0):
    """Top-1 accuracy of a float-input .tflite classifier on (x, y).

    `verbose=1` shows a progress bar over the samples.
    """
    interpreter = make_interpreter(path, num_threads)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    correct = 0
    for i in progress(range(len(x)), verbose, "sample"):
        interpreter.set_tensor(inp["index"], x[i : i + 1].astype(np.float32))
        interpreter.invoke()
        pred = int(np.argmax(interpreter.get_tensor(out["index"])))
        correct += int(pred == int(y[i]))
    return correct / max(len(x), 1)
