"""Training-step overhead of pruning-wrapped models, and scoring times.

Measures, in one process and interleaved (plain, wrapped, plain, ...), the
training-step time of a ResNet-20-like CIFAR network (batch 128, CPU) as a
plain Keras model and as the `PrunedModel` returned by
`keras_neuronprune.prune_structured` (masked layers, bounded BatchNorm and
the RNI regulariser for `rni`, the `UpdatePruning` callback), then the time
one `criterion.score` call takes on the same network for each criterion.

Run (numbers in docs/training.md):

    python -m benchmarks.training_overhead --output results/overhead.json

The goal is at most 10% training-step overhead. Both the wall time and
the process CPU time of each step are reported; on a shared machine the
CPU time is the steadier one.
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from benchmarks._examples import load_example

CRITERIA = (
    "l1",
    "l2",
    "bn_scale",
    "rni",
    "random",
    "bn_stats",
    "taylor",
    "taylor_activation",
    "taylor_so",
)
DATA_CRITERIA = ("bn_stats", "taylor", "taylor_activation", "taylor_so")


def _resnet_builder():
    return load_example("prune_cifar10_rni").build_resnet


class _StepTimer:
    """Records the wall and process CPU time of every training batch.

    On a shared machine the wall time depends on what the neighbours run;
    the CPU time the process spends per step is the steadier measure of
    the work a step does.
    """

    def __init__(self):
        import keras

        timer = self

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                timer._start = (time.perf_counter(), time.process_time())

            def on_train_batch_end(self, batch, logs=None):
                wall, cpu = timer._start
                timer.times.append(time.perf_counter() - wall)
                timer.cpu_times.append(time.process_time() - cpu)

        self.times = []
        self.cpu_times = []
        self.callback = _Callback()


def _compile(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def measure_overhead(criterion, steps, rounds, batch_size, seed=0):
    """Median step times (seconds) of the plain and the wrapped model."""
    import keras

    from keras_neuronprune.callbacks import UpdatePruning
    from keras_neuronprune.pruning import prune_structured
    from keras_neuronprune.schedules import OneShot

    keras.utils.set_random_seed(seed)
    build_resnet = _resnet_builder()
    plain = build_resnet(20, 16)
    rng = np.random.default_rng(seed)
    data = None
    if criterion in DATA_CRITERIA:
        data = [
            (
                rng.normal(size=(64, 32, 32, 3)).astype("float32"),
                rng.integers(0, 10, 64),
            )
        ]
    # Prune at step 0, so the wrapped model trains with its masks active.
    wrapped = prune_structured(
        plain,
        criterion=criterion,
        pruning_ratio=0.5,
        schedule=OneShot(0),
        data=data,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    _compile(plain)
    _compile(wrapped)
    x = rng.normal(size=(batch_size * steps, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size * steps)
    results = {"plain": [], "wrapped": []}
    cpu = {"plain": [], "wrapped": []}
    for model, key, extra in (
        (plain, "plain", []),
        (wrapped, "wrapped", [UpdatePruning()]),
    ):  # warm-up: tracing
        model.fit(
            x[: 2 * batch_size],
            y[: 2 * batch_size],
            batch_size=batch_size,
            verbose=0,
            callbacks=extra,
        )
    for _ in range(rounds):
        for model, key, extra in (
            (plain, "plain", []),
            (wrapped, "wrapped", [UpdatePruning()]),
        ):
            timer = _StepTimer()
            model.fit(
                x,
                y,
                batch_size=batch_size,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[*extra, timer.callback],
            )
            results[key].append(statistics.median(timer.times))
            cpu[key].append(statistics.median(timer.cpu_times))
    plain_t = statistics.median(results["plain"])
    wrapped_t = statistics.median(results["wrapped"])
    plain_cpu = statistics.median(cpu["plain"])
    wrapped_cpu = statistics.median(cpu["wrapped"])
    return {
        "criterion": criterion,
        "plain_step_s": plain_t,
        "wrapped_step_s": wrapped_t,
        "overhead": wrapped_t / plain_t - 1.0,
        "plain_step_cpu_s": plain_cpu,
        "wrapped_step_cpu_s": wrapped_cpu,
        "overhead_cpu": wrapped_cpu / plain_cpu - 1.0,
        "cpu_rounds_plain": cpu["plain"],
        "cpu_rounds_wrapped": cpu["wrapped"],
        "rounds_plain": results["plain"],
        "rounds_wrapped": results["wrapped"],
    }


def measure_scoring(criteria, batch_size, batches, repeats, seed=0):
    """Seconds per `criterion.score` call on the ResNet-20-like network."""
    import keras

    from keras_neuronprune.criteria.base_criterion import ScoringContext
    from keras_neuronprune.pruning import prune_structured

    build_resnet = _resnet_builder()
    rng = np.random.default_rng(seed)
    data = [
        (
            rng.normal(size=(batch_size, 32, 32, 3)).astype("float32"),
            rng.integers(0, 10, batch_size),
        )
        for _ in range(batches)
    ]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rows = []
    for name in criteria:
        keras.utils.set_random_seed(seed)
        model = build_resnet(20, 16)
        try:
            wrapped = prune_structured(
                model,
                criterion=name,
                pruning_ratio=0.5,
                data=data if name in DATA_CRITERIA else None,
                loss=loss,
            )
        except ValueError as error:
            rows.append({"criterion": name, "error": str(error)})
            continue
        controller = wrapped.controller
        context = ScoringContext(
            wrapped, controller.groups, data=controller.data, loss=loss
        )
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            controller.criterion.score(context)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "criterion": name,
                "first_call_s": times[0],
                "score_s": statistics.median(times[1:]),
                "groups": len(controller.groups),
                "data": f"{batches}x{batch_size}"
                if name in DATA_CRITERIA
                else None,
            }
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--overhead-criteria", nargs="+", default=["rni", "l1"])
    parser.add_argument("--criteria", nargs="*", default=list(CRITERIA))
    parser.add_argument("--score-batches", type=int, default=2)
    parser.add_argument("--score-repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    import keras

    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores "
        f"{platform.processor() or ''}".strip(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "batch_size": args.batch_size,
        "overhead": [],
    }
    for criterion in args.overhead_criteria:
        row = measure_overhead(
            criterion, args.steps, args.rounds, args.batch_size
        )
        report["overhead"].append(row)
        print(
            f"{criterion:>18}: wall plain {row['plain_step_s'] * 1000:.0f} / "
            f"wrapped {row['wrapped_step_s'] * 1000:.0f} ms/step "
            f"({row['overhead']:+.1%}); CPU plain "
            f"{row['plain_step_cpu_s'] * 1000:.0f} / wrapped "
            f"{row['wrapped_step_cpu_s'] * 1000:.0f} ms/step "
            f"({row['overhead_cpu']:+.1%})",
            flush=True,
        )
    report["scoring"] = measure_scoring(
        args.criteria, 64, args.score_batches, args.score_repeats
    )
    for row in report["scoring"]:
        if "error" in row:
            print(f"{row['criterion']:>18}: {row['error']}", flush=True)
        else:
            print(
                f"{row['criterion']:>18}: score {row['score_s'] * 1000:8.1f} "
                f"ms (first call {row['first_call_s'] * 1000:8.1f} ms)",
                flush=True,
            )
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
