"""Scoring cost of every criterion, as a multiple of one training epoch.

One ResNet-20-like CIFAR network (examples/prune_cifar10_rni.py, option-B
shortcuts, 0.27 M parameters) and 512 calibration images (CIFAR-10 when
`--data` points at it, else Gaussian noise: the cost does not depend on the
pixels) in batches of 128. The unit is the steady-state wall time of one
`model.fit` epoch over the same 512 images (batch 128, SGD), measured after
a warm-up epoch. Each criterion's `score` runs on the same model: "cold" is
the first call (building sub-models and tracing `tf.function`s), "warm" the
median of `--repeats` further calls (what iterative schedules pay). The
epoch is the median of three. The paper's CHIP (one SVD per channel per
image) is timed on `--svd-images` images and scaled to the full set.

Run (numbers in docs/criteria_advanced.md):

    python -m benchmarks.criteria_cost --output results/criteria_cost.json
    python -m benchmarks.criteria_cost \\
        --data ../shared/data/cifar10-jpeg/cifar10-jpeg.tar

Goals: SOSP-H within 3x first-order Taylor, CHIP within 10x one epoch.
"""

import argparse
import json
import os
import platform
import time
import traceback

import numpy as np

from benchmarks._examples import load_example

ADVANCED = (
    ("thinet", {}),
    ("nisp", {}),
    ("chip", {"method": "exact"}),
    ("chip", {"method": "first_order"}),
    ("chip", {"method": "eigvalsh"}),
    ("sosp", {"gauss_newton": True}),
    ("sosp", {"gauss_newton": False}),
    ("singe", {"steps": 8}),
    ("hessian_spectral", {}),
)
BASIC = (
    "l1",
    "l2",
    "bn_scale",
    "bn_stats",
    "random",
    "taylor",
    "taylor_activation",
    "taylor_so",
)


def _example_module():
    return load_example("prune_cifar10_rni")


def _data(spec, n, seed):
    if spec:
        module = _example_module()
        x_train, y_train = module.load_data(spec, limit_per_class=n // 10 + 1)[
            :2
        ]
        x, y = x_train[:n].astype("float32"), y_train[:n].astype("int64")
        return x, y, f"CIFAR-10 ({spec})"
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=n)
    return x, y, "Gaussian noise"


def _naive_chip(model, groups, x):
    """CHIP as in the paper's code: one SVD per channel per image."""
    from keras_neuronprune.criteria.chip import channel_matrices
    from keras_neuronprune.criteria.chip import group_feature_tensors
    from keras_neuronprune.utils.features import call_site_map
    from keras_neuronprune.utils.features import feature_model

    _, sites = call_site_map(model)
    plan = [
        (tensor, positions)
        for g in groups
        if g.prunable
        for tensor, positions in group_feature_tensors(model, g, sites)
    ]
    outputs = feature_model(model, [t for t, _ in plan]).predict_on_batch(x)
    for out, (_, positions) in zip(outputs, plan):
        for a in channel_matrices(out, positions):
            full = np.linalg.svd(a, compute_uv=False).sum()
            for c in range(a.shape[0]):
                b = a.copy()
                b[c] = 0
                full - np.linalg.svd(b, compute_uv=False).sum()


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 tar/folder")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--output", default=None, help="JSON results file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="warm runs per criterion (median); 1 for runs over 30 s",
    )
    parser.add_argument(
        "--svd-images",
        type=int,
        default=16,
        help="images timed for the per-channel-SVD CHIP baseline",
    )
    args = parser.parse_args(argv)

    import keras

    from keras_neuronprune.criteria.base_criterion import ScoringContext
    from keras_neuronprune.graph import channel_groups

    keras.utils.set_random_seed(args.seed)
    model = _example_module().build_resnet(depth=20)
    x, y, source = _data(args.data, args.samples, args.seed)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    if model.layers[-1].get_config().get("activation") in (None, "linear"):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=loss)
    bs = args.batch_size
    model.fit(x, y, batch_size=bs, epochs=1, verbose=0)  # warm-up / tracing
    epochs = []
    for _ in range(3):
        t, _ = _timed(
            lambda: model.fit(x, y, batch_size=bs, epochs=1, verbose=0)
        )
        epochs.append(t)
    epoch = float(np.median(epochs))
    batches = [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs)]
    groups = channel_groups(model)

    from keras_neuronprune import criteria

    jobs = [(name, {}) for name in BASIC] + list(ADVANCED)
    jobs.append(("chip_svd_per_channel", {}))
    jobs.append(("max_redundancy", {}))
    if args.only:
        jobs = [j for j in jobs if j[0] in args.only]
    rows = []
    for name, kwargs in jobs:
        label = name + (
            "(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
            if kwargs
            else ""
        )
        try:
            if name == "max_redundancy":
                from keras_neuronprune.analysis import max_redundancy

                def run():
                    return max_redundancy(model, batches, loss)

            elif name == "chip_svd_per_channel":
                label = (
                    f"chip, one SVD per channel (paper; {args.svd_images} "
                    f"images, x{len(x) / args.svd_images:.0f} extrapolated)"
                )

                def run():
                    start = time.perf_counter()
                    _naive_chip(model, groups, x[: args.svd_images])
                    return (time.perf_counter() - start) * (
                        len(x) / args.svd_images
                    )

            else:
                cls = type(criteria.get(name))
                criterion = cls(**kwargs)

                def run(criterion=criterion):
                    context = ScoringContext(model, groups, batches, loss)
                    return criterion.score(context)

            cold, value = _timed(run)
            if name == "chip_svd_per_channel":
                cold = warm = value
            else:
                # Median of repeats: the host is shared, single runs vary.
                repeats = args.repeats if cold < 30 else 1
                warm = float(
                    np.median([_timed(run)[0] for _ in range(repeats)])
                )
            rows.append(
                {
                    "criterion": label,
                    "cold_s": cold,
                    "warm_s": warm,
                    "cold_epochs": cold / epoch,
                    "warm_epochs": warm / epoch,
                }
            )
        except Exception as error:  # report, keep going
            traceback.print_exc()
            rows.append({"criterion": label, "error": repr(error)[:200]})
        print(_row_text(rows[-1]), flush=True)

    result = {
        "model": "ResNet-20 (examples/prune_cifar10_rni.py build_resnet)",
        "params": model.count_params(),
        "samples": len(x),
        "batch_size": bs,
        "data": source,
        "epoch_s": epoch,
        "epoch_runs_s": epochs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_version()}",
        "keras": keras.__version__,
        "rows": rows,
    }
    by = {r["criterion"]: r for r in rows if "error" not in r}
    taylor = by.get("taylor")
    sosp = by.get("sosp(gauss_newton=True)")
    chip = by.get("chip(method=exact)")
    if taylor and sosp:
        result["sosp_over_taylor_warm"] = sosp["warm_s"] / taylor["warm_s"]
        result["sosp_over_taylor_cold"] = sosp["cold_s"] / taylor["cold_s"]
    if chip:
        result["chip_epochs_warm"] = chip["warm_epochs"]
    print()
    print(markdown_table(result))
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return result


def _row_text(row):
    if "error" in row:
        return f"{row['criterion']}: ERROR {row['error']}"
    return (
        f"{row['criterion']}: cold {row['cold_s']:.2f}s "
        f"({row['cold_epochs']:.2f} epochs), warm {row['warm_s']:.2f}s "
        f"({row['warm_epochs']:.2f} epochs)"
    )


def markdown_table(result):
    lines = [
        f"One epoch = {result['epoch_s']:.2f} s ({result['samples']} images, "
        f"batch {result['batch_size']}, {result['data']}, "
        f"{result['machine']}).",
        "",
        "| criterion | cold (s) | cold (epochs) | warm (s) | warm (epochs) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['criterion']} | n/a | | | {row['error']} |")
            continue
        lines.append(
            f"| {row['criterion']} | {row['cold_s']:.2f} | "
            f"{row['cold_epochs']:.2f} | {row['warm_s']:.2f} | "
            f"{row['warm_epochs']:.2f} |"
        )
    for key in (
        "sosp_over_taylor_warm",
        "sosp_over_taylor_cold",
        "chip_epochs_warm",
    ):
        if key in result:
            lines.append(f"\n{key}: {result[key]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
