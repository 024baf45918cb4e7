"""One benchmark run: a method at a target from the dense checkpoint.

Budget (the same for every method, after the dense checkpoint):
`E_reg + E_ft` epochs with one SGD optimiser and one cosine learning-rate
schedule over all of them. Regularised methods (rni, greg, bn_scale)
train `E_reg` epochs with their regulariser, prune once, then fine-tune
`E_ft` epochs; every other criterion, and uniform, prunes at once and
fine-tunes `E_reg + E_ft` epochs. `scratch` trains the uniform thin
architecture from a fresh initialisation for `E_dense + E_reg + E_ft`
epochs with the dense model's schedule ("Rethinking the Value of Network
Pruning", Liu et al., arXiv:1810.05270).
"""

import re

import numpy as np

from benchmarks.quality import training

CRITERIA = (
    "l1",
    "l2",
    "bn_scale",
    "rni",
    "taylor",
    "taylor_so",
    "bn_stats",
    "greg",
    "thinet",
    "nisp",
    "chip",
    "sosp",
    "random",
)
BASELINES = ("uniform", "scratch")
# Trained in with a regulariser before the one pruning step.
REGULARISED = ("rni", "greg", "bn_scale", "network_slimming", "l1_gamma")


def parse_target(text):
    """`"2x"` -> FLOPs kept 0.5; `"ch90"` -> 90% of the channels removed.

    Returns:
        `(kind, value)`: `("flops", kept fraction)` or `("channels", ratio)`.
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)x", text)
    if match and float(match.group(1)) > 1:
        return "flops", 1.0 / float(match.group(1))
    match = re.fullmatch(r"ch(\d+(?:\.\d+)?)", text)
    if match and 0 < float(match.group(1)) < 100:
        return "channels", float(match.group(1)) / 100.0
    raise ValueError(
        "`--targets` entries must be '<k>x' (FLOP reduction, k > 1, e.g. 2x) "
        f"or 'ch<percent>' (channels removed, e.g. ch90). Received: {text!r}"
    )


def split_method(name):
    """`"rni@local"` -> `("rni", {"global_pruning": False})`.

    A suffix `@local` / `@global` runs a criterion with per-group / global
    channel ranking instead of its default, so both can be compared under
    the same budget.
    """
    base, _, variant = name.partition("@")
    options = {"": {}, "local": {"global_pruning": False}}
    options["global"] = {"global_pruning": True}
    if variant not in options:
        raise ValueError(
            f"`--criteria` entry {name!r}: the suffix after '@' must be "
            f"'local' or 'global'. Received: {variant!r}"
        )
    return base, options[variant]


def check_method(name):
    import keras_neuronprune as knp

    name, _ = split_method(name)
    if name in BASELINES:
        return
    known = knp.criteria.all_criteria()
    if name not in known:
        raise ValueError(
            f"`--criteria` entry {name!r} is not a registered criterion "
            f"({sorted(known)}) nor one of {list(BASELINES)}"
        )


class Context:
    """What every run of one (model, seed) shares."""

    def __init__(self, args, dense, dense_meta, data, seed, base_cost):
        self.args = args
        self.dense = dense
        self.dense_meta = dense_meta
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.seed = seed
        self.base_cost = base_cost
        self.steps = int(np.ceil(len(self.x_train) / args.batch_size))
        self._uniform = {}
        self._groups = None
        # Set for "latency" targets (`benchmarks.latency_quality`).
        self.latency_table = None

    def groups(self):
        import keras_neuronprune as knp

        if self._groups is None:
            self._groups = knp.channel_groups(self.dense)
        return self._groups

    def train_batches(self, seed_offset=1):
        return training.batches(
            self.x_train,
            self.y_train,
            self.args.batch_size,
            seed=self.seed * 1000 + seed_offset,
            augment=self.args.augment,
        )

    def calibration(self):
        n = self.args.calibration_batches * self.args.batch_size
        rng = np.random.default_rng(self.seed)
        idx = rng.permutation(len(self.x_train))[:n]
        bs = self.args.batch_size
        return [
            (self.x_train[idx[i : i + bs]], self.y_train[idx[i : i + bs]])
            for i in range(0, len(idx), bs)
        ]

    def accuracy(self, model):
        return training.accuracy(model, self.x_test, self.y_test)

    def uniform(self, kind, value):
        """`(ratio, keep)` of uniform shrinking at a target (cached)."""
        key = (kind, value)
        if key not in self._uniform:
            self._uniform[key] = _uniform_for(self, kind, value)
        return self._uniform[key]


def _uniform_flops(ctx, ratio):
    import keras_neuronprune as knp

    keep = knp.uniform_keep(ctx.dense, ratio, groups=ctx.groups())
    if not keep:
        return keep, 1.0
    thin, _ = knp.thin_model(ctx.dense, keep)
    return keep, knp.count_cost(thin).flops / ctx.base_cost.flops


def _uniform_for(ctx, kind, value):
    import keras_neuronprune as knp

    if kind == "channels":
        return value, knp.uniform_keep(ctx.dense, value, groups=ctx.groups())
    # The ratios at which some group's kept count changes; FLOPs fall
    # monotonically with the ratio, so bisect over them and take the
    # candidate nearest to the target.
    sizes = {g.size for g in ctx.groups() if g.prunable}
    candidates = sorted({k / s for s in sizes for k in range(s)} | {0.0})
    lo, hi = 0, len(candidates) - 1
    cache = {}

    def flops(i):
        if i not in cache:
            cache[i] = _uniform_flops(ctx, candidates[i] + 1e-9)
        return cache[i][1]

    while hi - lo > 1:
        mid = (lo + hi) // 2
        if flops(mid) > value:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda i: abs(flops(i) - value))
    return candidates[best] + 1e-9, cache[best][0]


def _criterion(name, kind, value, ctx, reg_steps):
    """The criterion object and extra `prune_structured` arguments."""
    import keras_neuronprune as knp

    name, extra = split_method(name)
    extra = dict(extra)
    if name == "rni" and extra.get("global_pruning"):
        extra["min_channels"] = 3  # the paper's global setting
    if name == "random":
        return knp.criteria.RandomCriterion(seed=ctx.seed), extra
    if name == "greg":
        # GReg picks per layer with its own ratio: give it the uniform
        # ratio of the target, and fit its growth + stabilisation into the
        # regularised phase (the paper's defaults need ~110k steps).
        ratio = ctx.uniform(kind, value)[0]
        growth = max(1, int(0.6 * reg_steps))
        criterion = knp.criteria.GReg(
            pruning_ratio=min(0.99, ratio),
            update_interval=1,
            granularity_prune=1.0 / growth,
            stabilize_interval=max(0, reg_steps - growth - 1),
        )
        extra["global_pruning"] = False
        return criterion, extra
    return name, extra


def _target_kwargs(kind, value, ctx):
    if kind == "flops":
        return {"flops_pruning_ratio": 1.0 - value}
    if kind == "latency":
        # `value` is the kept share of the dense latency per the table.
        return {"target_latency": value, "latency_table": ctx.latency_table}
    return {"pruning_ratio": value}


def _never(step):
    return False, 0.0


def run(ctx, method, kind, value):
    """Runs one method at one target; returns the result row (a dict)."""
    import keras

    import keras_neuronprune as knp

    args = ctx.args
    keras.utils.set_random_seed(ctx.seed)
    e_reg, e_ft = args.reg_epochs, args.finetune_epochs
    total_epochs = e_reg + e_ft
    row = {"acc_pruned": None, "acc_before_mask": None}
    hist = None
    base = split_method(method)[0]
    with training.Timer() as timer:
        if method in BASELINES:
            ratio, keep = ctx.uniform(kind, value)
            thin, _ = (
                knp.thin_model(ctx.dense, keep) if keep else (ctx.dense, None)
            )
            if method == "uniform":
                model = keras.models.clone_model(thin)
                model.set_weights(thin.get_weights())
                row["acc_pruned"] = ctx.accuracy(model)
                training.compile_model(
                    model,
                    args.finetune_lr,
                    total_epochs * ctx.steps,
                    args.weight_decay,
                )
                if total_epochs:
                    model.fit(
                        ctx.train_batches(), epochs=total_epochs, verbose=0
                    )
            else:
                model = keras.models.clone_model(thin)  # fresh weights
                epochs = args.epochs + total_epochs
                training.compile_model(
                    model, args.lr, epochs * ctx.steps, args.weight_decay
                )
                if epochs:
                    model.fit(ctx.train_batches(2), epochs=epochs, verbose=0)
            final = model
            row["uniform_ratio"] = float(ratio)
        else:
            final, hist = _run_criterion(ctx, method, kind, value, row)
        row["acc_final"] = ctx.accuracy(final)
    cost = knp.count_cost(final)
    row.update(
        {
            "flops": int(cost.flops),
            "params": int(cost.params),
            "flops_kept": cost.flops / ctx.base_cost.flops,
            "params_kept": cost.params / ctx.base_cost.params,
            "cpu_s": timer.cpu,
            "wall_s": timer.wall,
            "regularised": base in REGULARISED,
            "epochs_reg": e_reg if base in REGULARISED else 0,
            "epochs_ft": total_epochs - (e_reg if base in REGULARISED else 0)
            if method != "scratch"
            else 0,
            "epochs_scratch": args.epochs + total_epochs
            if method == "scratch"
            else 0,
            "kept_channels": _channels(final),
        }
    )
    return row, hist


def _run_criterion(ctx, method, kind, value, row):
    import keras

    import keras_neuronprune as knp

    args = ctx.args
    e_reg, e_ft = args.reg_epochs, args.finetune_epochs
    base = split_method(method)[0]
    regularised = base in REGULARISED and e_reg > 0
    reg_steps = e_reg * ctx.steps
    criterion, extra = _criterion(method, kind, value, ctx, reg_steps)
    needs_data = getattr(knp.criteria.get(criterion), "requires_data", False)
    pruned = knp.prune_structured(
        ctx.dense,
        criterion=criterion,
        schedule=knp.schedules.OneShot(step=reg_steps)
        if regularised
        else _never,
        data=ctx.calibration() if needs_data else None,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **_target_kwargs(kind, value, ctx),
        **extra,
    )
    training.compile_model(
        pruned,
        args.finetune_lr,
        (e_reg + e_ft) * ctx.steps,
        args.weight_decay,
    )
    batches = ctx.train_batches()
    if regularised:
        pruned.fit(
            batches,
            epochs=e_reg,
            verbose=0,
            callbacks=[knp.callbacks.UpdatePruning()],
        )
        row["acc_before_mask"] = ctx.accuracy(pruned)
        if e_ft:
            snap = _AfterPrune(ctx, pruned, reg_steps, row)
            pruned.fit(
                batches,
                initial_epoch=e_reg,
                epochs=e_reg + e_ft,
                verbose=0,
                callbacks=[knp.callbacks.UpdatePruning(), snap],
            )
        else:
            pruned.controller.prune(pruned)
            row["acc_pruned"] = ctx.accuracy(pruned)
    else:
        pruned.controller.prune(pruned)
        row["acc_pruned"] = ctx.accuracy(pruned)
        if e_reg + e_ft:
            pruned.fit(
                batches,
                epochs=e_reg + e_ft,
                verbose=0,
                callbacks=[knp.callbacks.UpdatePruning()],
            )
    hist = None
    if base == "rni":
        hist = _histograms(pruned)
    row["pruned_ratio"] = float(
        pruned.controller.summary_scalars(pruned)["pruning_ratio"]
    )
    row["kept_counts"] = {
        name: int(count)
        for name, count in pruned.controller.kept_counts(pruned).items()
    }
    return knp.strip_pruning(pruned), hist


def _after_prune_callback():
    import keras

    class AfterPrune(keras.callbacks.Callback):
        """Test accuracy right after the masks change, before any update.

        Placed after `UpdatePruning`, whose `on_train_batch_begin` prunes.
        """

        def __init__(self, ctx, pruned, step, row):
            super().__init__()
            self.ctx, self.pruned, self.step, self.row = ctx, pruned, step, row

        def on_train_batch_begin(self, batch, logs=None):
            if self.row["acc_pruned"] is None and (
                int(self.pruned.pruning_step.numpy()) == self.step
            ):
                self.row["acc_pruned"] = self.ctx.accuracy(self.pruned)

    return AfterPrune


def _AfterPrune(ctx, pruned, step, row):  # noqa: N802 - a class factory
    return _after_prune_callback()(ctx, pruned, step, row)


def _histograms(pruned):
    values = pruned.controller.importance_histograms(pruned)
    if not values:
        return None
    kept = pruned.controller.keep_sets(pruned)
    removed = [
        float(np.max(np.delete(v, kept[g])))
        for g, v in values.items()
        if g in kept and len(kept[g]) < len(v)
    ]
    return {
        "groups": {g: np.asarray(v).tolist() for g, v in values.items()},
        "threshold": max(removed) if removed else None,
    }


def _channels(model):
    import keras

    return {
        layer.name: int(layer.filters)
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    }
