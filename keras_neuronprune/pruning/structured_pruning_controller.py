"""`StructuredPruningController`: channel pruning during `fit`."""

import keras
import numpy as np

from keras_neuronprune.core import selection as _selection
from keras_neuronprune.core.pruning_controller import PruningController
from keras_neuronprune.core.surgery import find_layer
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.pruning import _flops_target
from keras_neuronprune.pruning import _latency_target
from keras_neuronprune.pruning._cost_estimate import CostEstimator
from keras_neuronprune.pruning._group_spec import group_from_config
from keras_neuronprune.pruning._group_spec import group_to_config
from keras_neuronprune.pruning._group_spec import targets_from_config
from keras_neuronprune.pruning._group_spec import targets_to_config
from keras_neuronprune.pruning._surgery import HEADS_TARGET
from keras_neuronprune.schedules.base_pruning_schedule import (
    check_schedule_output,
)
from keras_neuronprune.utils.renamed_arguments import pop_renamed


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class StructuredPruningController(PruningController, keras.layers.Layer):
    """Decides which channels of a `PrunedModel` to remove, and when.

    Created by `keras_neuronprune.prune_structured`; users normally only
    read it (`model.controller`). At every step the schedule says to prune,
    it scores the channel groups with the criterion, smooths the scores
    into the importance accumulators, turns them into keep sets (global or
    per-group ranking under `min_channels`, `round_to`,
    `max_pruning_ratio`, conv-group partitions and the FLOP target) and
    writes the masks of every member of every group.

    Its state is saved with the model: the masks are weights of the masked
    layers, `pruning_step` is a weight of the `PrunedModel`, and the
    importance accumulators are weights of this controller, which is a
    (graph-less) Keras layer tracked by the model for exactly that reason.
    Everything else is configuration, so a model saved mid-pruning (or
    restored by `BackupAndRestore`) resumes to the same result.

    Calibration data is not saved; call `controller.set_data(batches)`
    (and set `controller.loss`) again after loading a model whose
    criterion needs data.

    Args:
        criterion: a `Criterion` or its config.
        groups: the prunable `ChannelGroup`s (or their configs).
        targets: dict group name -> list of `(layer path, "output" |
            "input", positions)`: the mask entries of each group channel.
        pruning_ratio: target fraction of channels removed (None with
            `flops_pruning_ratio` or a ratio dict only).
        pruning_ratio_dict: dict group name -> ratio for these groups.
        flops_pruning_ratio: fraction of the original FLOPs to remove
            (0.5: half the FLOPs). `target_flops` (the fraction to keep)
            is its deprecated spelling, converted as 1 - target_flops.
        schedule: a bound schedule (or its config).
        global_pruning: rank channels across groups (True) or per group.
        min_channels, round_to, max_pruning_ratio: keep-count constraints.
        importance_momentum: EMA factor of the importance accumulators
            across scoring steps (0: the latest scores only).
        layer_costs: `[path, params, flops, n_in, n_out]` rows of the
            original model, for the fast cost estimate.
        base_params, base_flops: cost of the original model.
        allow_inexact: whether inexact groups may be pruned.
        target_latency: instead of the other targets, the fraction of
            the dense model's latency (per `latency_table`) to keep.
        latency_table: the latency table dict (`target_latency`).
        data, loss: calibration batches and loss for criteria that need
            them (not serialised).
    """

    def __init__(
        self,
        criterion,
        groups,
        targets,
        pruning_ratio=None,
        pruning_ratio_dict=None,
        flops_pruning_ratio=None,
        schedule=None,
        global_pruning=False,
        min_channels=1,
        round_to=1,
        max_pruning_ratio=1.0,
        importance_momentum=0.0,
        layer_costs=None,
        base_params=0,
        base_flops=0,
        allow_inexact=False,
        data=None,
        loss=None,
        input_shape=None,
        target_latency=None,
        latency_table=None,
        **kwargs,
    ):
        flops_pruning_ratio = pop_renamed(
            kwargs,
            "target_flops",
            "flops_pruning_ratio",
            flops_pruning_ratio,
            where="StructuredPruningController",
            convert=lambda keep: 1.0 - keep,
        )
        kwargs.setdefault("name", "structured_pruning_controller")
        keras.layers.Layer.__init__(self, **kwargs)
        if isinstance(criterion, dict):
            criterion = keras.saving.deserialize_keras_object(criterion)
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        self.criterion = criterion
        self._groups = tuple(
            group_from_config(g) if isinstance(g, dict) else g for g in groups
        )
        if targets and isinstance(next(iter(targets.values()))[0], list):
            targets = targets_from_config(targets)
        self._targets = dict(targets)
        self.pruning_ratio = pruning_ratio
        self.pruning_ratio_dict = dict(pruning_ratio_dict or {})
        self.flops_pruning_ratio = flops_pruning_ratio
        self.schedule = schedule
        self.global_pruning = bool(global_pruning)
        self.min_channels = int(min_channels)
        self.round_to = int(round_to)
        self.max_pruning_ratio = float(max_pruning_ratio)
        self.importance_momentum = float(importance_momentum)
        self.layer_costs = [list(row) for row in (layer_costs or [])]
        self.base_params = int(base_params)
        self.base_flops = int(base_flops)
        self.allow_inexact = bool(allow_inexact)
        # The costing shape of models with undefined input dimensions.
        self.input_shape = _shape_to_config(input_shape)
        self.target_latency = target_latency
        self.latency_table = latency_table
        self._latency = None
        self.data = data
        self.loss = loss
        self._estimator = CostEstimator(
            self._groups, self.layer_costs, self.base_params, self.base_flops
        )
        self._importance = [
            self.add_weight(
                shape=(g.size,),
                initializer="zeros",
                trainable=False,
                name=f"importance_{i}",
            )
            for i, g in enumerate(self._groups)
        ]
        self._score_count = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            name="score_count",
        )
        self._layer_cache = {}
        self._summary = None

    # ------------------------------------------------------------------
    # Configuration.
    @property
    def groups(self):
        """The prunable channel groups (as computed on the user's model)."""
        return list(self._groups)

    @property
    def final_ratio(self):
        if self.pruning_ratio is not None:
            return self.pruning_ratio
        return 1.0

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(
            {
                "criterion": keras.saving.serialize_keras_object(
                    self.criterion
                ),
                "groups": [group_to_config(g) for g in self._groups],
                "targets": targets_to_config(self._targets),
                "pruning_ratio": self.pruning_ratio,
                "pruning_ratio_dict": dict(self.pruning_ratio_dict),
                "flops_pruning_ratio": self.flops_pruning_ratio,
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "global_pruning": self.global_pruning,
                "min_channels": self.min_channels,
                "round_to": self.round_to,
                "max_pruning_ratio": self.max_pruning_ratio,
                "importance_momentum": self.importance_momentum,
                "layer_costs": self.layer_costs,
                "base_params": self.base_params,
                "base_flops": self.base_flops,
                "allow_inexact": self.allow_inexact,
                "input_shape": self.input_shape,
                "target_latency": self.target_latency,
                "latency_table": self.latency_table,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Models saved before the rename hold `target_flops` (the kept
        # share): they load without a warning.
        config = dict(config)
        keep = config.pop("target_flops", None)
        if keep is not None and config.get("flops_pruning_ratio") is None:
            config["flops_pruning_ratio"] = 1.0 - keep
        return cls(**config)

    # ------------------------------------------------------------------
    # Training hooks.
    def on_train_begin(self, model):
        # Weights may have been restored (BackupAndRestore) since the last
        # call: drop everything derived from them.
        self._layer_cache = {}
        self._summary = None

    def plan_training(self, model, start_step, total_steps):
        """Lets a schedule that prunes after a share of `fit` fix its step."""
        plan = getattr(self.schedule, "plan", None)
        if plan is not None:
            plan(start_step, total_steps)

    def on_train_batch_begin(self, model, step):
        should_prune, ratio = check_schedule_output(self.schedule, step)
        if should_prune:
            self.prune(model, ratio, step)

    def on_train_batch_end(self, model, step, logs=None):
        # Stateful criteria (GReg's growing penalties) advance every batch.
        update = getattr(type(self.criterion), "update", None)
        if update is not None and update is not Criterion.update:
            context = self._context(model, step)
            context.planned_keep = lambda: self.planned_keep(model, step)
            context.prune_step = getattr(self.schedule, "step", None)
            self.criterion.update(context)

    def summary_scalars(self, model):
        if self._summary is None:
            self._summary = self._compute_summary(model)
        return dict(self._summary)

    def importance_histograms(self, model):
        if int(self._score_count.numpy()) == 0:
            return {}
        unsupported = self.unsupported_groups(model)
        return {
            g.name: np.asarray(v.numpy(), "float64")
            for g, v in zip(self._groups, self._importance)
            if g.name not in unsupported
        }

    def strip(self, model, check=True):
        from keras_neuronprune.pruning._surgery import strip_structured

        return strip_structured(model, check=check)

    # ------------------------------------------------------------------
    # Pruning.
    def prune(self, model, ratio=None, step=None):
        """Scores the groups and updates the masks to reach `ratio`.

        Args:
            model: the `PrunedModel`.
            ratio: the schedule's ratio (None: the final one).
            step: the pruning step (None: `model.pruning_step`).

        Returns:
            The keep sets (dict group name -> kept indices).
        """
        if step is None:
            step = int(model.pruning_step.numpy())
        if ratio is None:
            ratio = self.final_ratio
        final = self.final_ratio
        progress = 1.0 if final <= 0 else float(ratio) / final
        progress = min(1.0, max(0.0, progress))
        scores = self._scores(model, step)
        plans = self._plans(model)
        counts = self._counts(plans, scores, progress, model)
        keep = _selection.keep_sets(plans, scores, counts)
        self.apply_keep(model, keep)
        return keep

    def planned_keep(self, model, step=None):
        """The keep sets that pruning to the final target would pick now.

        Changes nothing (no mask, no importance average): regularising
        criteria use it to aim their penalty at the channels due to go.
        Data-driven criteria are not scored here (None is returned).
        """
        if getattr(self.criterion, "requires_data", False):
            return None
        if step is None:
            step = int(model.pruning_step.numpy())
        unsupported = self.unsupported_groups(model)
        measured = [g for g in self._groups if g.name not in unsupported]
        raw = {}
        if measured:
            raw = self.criterion.score(self._context(model, step, measured))
        scores = {
            g.name: np.asarray(raw[g.name], "float64").reshape(-1)
            if g.name in raw
            else np.ones(g.size)
            for g in self._groups
        }
        plans = self._plans(model)
        counts = self._counts(plans, scores, 1.0, model, refine=False)
        return _selection.keep_sets(plans, scores, counts)

    def _scores(self, model, step):
        from keras_neuronprune.criteria.base_criterion import (
            check_finite_scores,
        )

        self._check_data()
        unsupported = self.unsupported_groups(model)
        measured = [g for g in self._groups if g.name not in unsupported]
        raw = {}
        if measured:
            raw = self.criterion.score(self._context(model, step, measured))
        first = int(self._score_count.numpy()) == 0
        m = 0.0 if first else self.importance_momentum
        scores = {}
        for group, variable in zip(self._groups, self._importance):
            if group.name in unsupported:
                # Kept whole (see `_counts`); the score is never compared.
                scores[group.name] = np.ones(group.size)
                continue
            if group.name not in raw:
                raise ValueError(
                    f"Criterion {type(self.criterion).__name__} returned no "
                    f"scores for channel group {group.name!r}."
                )
            s = np.asarray(raw[group.name], "float64").reshape(-1)
            if s.shape != (group.size,):
                raise ValueError(
                    f"Criterion {type(self.criterion).__name__} returned "
                    f"{s.shape[0]} scores for channel group {group.name!r} "
                    f"of {group.size} channels."
                )
            check_finite_scores(s, group.name)
            s = m * np.asarray(variable.numpy(), "float64") + (1 - m) * s
            variable.assign(s.astype("float32"))
            scores[group.name] = s
        self._score_count.assign(self._score_count.numpy() + 1)
        return scores

    def _context(self, model, step, groups=None):
        from keras_neuronprune.criteria.base_criterion import ScoringContext

        loss = self.loss
        if loss is None:
            loss = getattr(model, "loss", None)
        groups = list(self._groups) if groups is None else list(groups)
        return ScoringContext(
            model, groups, data=self.data, loss=loss, step=step
        )

    def _check_data(self):
        if getattr(self.criterion, "requires_data", False) and (
            self.data is None
        ):
            raise ValueError(
                f"Criterion {type(self.criterion).__name__} needs calibration "
                "data, but `controller.data` is None. Pass `data=` to "
                "`prune_structured` or, after loading a model, call "
                "`model.controller.set_data(batches)`. Received: data=None"
            )

    def set_data(self, data):
        """Attaches calibration batches for criteria that need data.

        Args:
            data: what `prune_structured(data=)` takes (batches of
                `(x, y)`), or None.
        """
        self.data = data

    @property
    def selector(self):
        """The `ChannelSelector` of this controller's keep-count limits."""
        return _selection.ChannelSelector(
            min_channels=self.min_channels,
            max_pruning_ratio=self.max_pruning_ratio,
            round_to=self.round_to,
            global_pruning=self.global_pruning,
        )

    def _plans(self, model):
        return self.selector.plans(
            self._groups, kept=lambda g: self.kept(model, g)
        )

    def unsupported_groups(self, model):
        """Names of the groups the criterion cannot measure in `model`.

        They keep all their channels (unlike a criterion's fallback score,
        which would let an index order decide).
        """
        supports = getattr(self.criterion, "supports", None)
        if supports is None:
            return set()
        return {g.name for g in self._groups if not supports(g, model)}

    def _counts(self, plans, scores, progress, model=None, refine=True):
        # Groups the criterion cannot measure keep their channels.
        unsupported = (
            self.unsupported_groups(model) if model is not None else set()
        )
        fixed = {p.name: p.kept_count for p in plans if p.name in unsupported}
        selector = self.selector
        ratio_dict = {
            name: ratio * progress
            for name, ratio in self.pruning_ratio_dict.items()
        }
        if self.target_latency is not None:
            return _latency_target.controller_counts(
                self, plans, scores, selector.fixed_counts(
                    plans, ratio_dict, fixed), progress
            )  # fmt: skip
        if self.flops_pruning_ratio is None:
            ratio = self.pruning_ratio
            if ratio is not None:
                ratio = ratio * progress
            return selector.counts(plans, scores, ratio, ratio_dict, fixed)
        fixed = selector.fixed_counts(plans, ratio_dict, fixed)
        exact = None
        if refine and progress >= 1.0 and model is not None:
            exact = self._exact_share(model, plans, scores)
        base = self._estimator.base_flops
        return _flops_target.solve_flops(
            lambda r: selector.ratio_counts(plans, scores, fixed, r),
            lambda c: self._estimator.estimate(c)[1] / base,
            1.0 - self.flops_pruning_ratio * progress,
            exact=exact,
            unreachable=self._unreachable_message,
        )

    def _unreachable_message(self, kept):
        return (
            f"`flops_pruning_ratio`={self.flops_pruning_ratio} cannot be "
            "reached: with "
            f"min_channels={self.min_channels} and max_pruning_ratio="
            f"{self.max_pruning_ratio}, pruning every prunable group as "
            f"far as allowed keeps {kept:.3f} of the FLOPs."
        )

    def _exact_share(self, model, plans, scores):
        """`counts -> kept FLOP share` from `count_cost` of the thin model."""
        from keras_neuronprune.pruning._surgery import build_plain_clone
        from keras_neuronprune.pruning._surgery import exact_cost

        # The plain clone depends on the architecture only, not on the
        # masks: one clone, built when first needed, serves the search.
        plain = []

        def share(counts):
            if not plain:
                plain.append(build_plain_clone(model))
            keep = _selection.keep_sets(plans, scores, counts)
            cost = exact_cost(plain[0], keep, input_shape=self.input_shape)
            return cost[1] / self.base_flops

        return share

    # ------------------------------------------------------------------
    # Masks.
    def _layer(self, model, path):
        key = (id(model), path)
        layer = self._layer_cache.get(key)
        if layer is None:
            layer = find_layer(model, path)
            self._layer_cache[key] = layer
        return layer

    def _mask_variable(self, model, path, kind):
        layer = self._layer(model, path)
        if kind == "input":
            return layer.input_mask
        if kind == HEADS_TARGET:
            return layer.head_mask
        for name in ("output_mask", "channel_mask"):
            variable = getattr(layer, name, None)
            if isinstance(variable, keras.Variable):
                return variable
        raise ValueError(f"internal error: layer {path!r} has no output mask")

    def kept(self, model, group):
        """Boolean array (size,): the group's channels still kept."""
        path, kind, positions = self._targets[group.name][0]
        mask = np.asarray(self._mask_variable(model, path, kind).numpy())
        return np.all(mask[positions] > 0.5, axis=1)

    def keep_sets(self, model):
        """Dict group name -> kept indices, for groups that lost channels."""
        keep = {}
        for group in self._groups:
            kept = self.kept(model, group)
            if not kept.all():
                keep[group.name] = np.nonzero(kept)[0]
        return keep

    def apply_keep(self, model, keep):
        """Writes the masks of every group member from keep sets."""
        masks = {}
        for group in self._groups:
            kept = np.zeros(group.size, bool)
            kept[np.asarray(keep.get(group.name, np.arange(group.size)))] = True
            for path, kind, positions in self._targets[group.name]:
                key = (path, kind)
                if key not in masks:
                    variable = self._mask_variable(model, path, kind)
                    masks[key] = np.ones(tuple(variable.shape), "float32")
                removed = np.asarray(positions)[~kept].reshape(-1)
                masks[key][removed] = 0.0
        for (path, kind), mask in masks.items():
            self._mask_variable(model, path, kind).assign(mask)
        self._summary = None

    # ------------------------------------------------------------------
    # Reporting.
    def kept_counts(self, model):
        return {g.name: int(self.kept(model, g).sum()) for g in self._groups}

    def _compute_summary(self, model):
        counts = self.kept_counts(model)
        total = sum(g.size for g in self._groups)
        removed = total - sum(counts.values())
        params, flops = self._estimator.estimate(counts)
        summary = {
            "pruning_ratio": removed / total if total else 0.0,
            "params_kept": params / self.base_params
            if self.base_params
            else 1.0,
            "flops_kept": flops / self.base_flops if self.base_flops else 1.0,
            "cost/params": params,
            "cost/flops": flops,
        }
        for name, count in counts.items():
            summary[f"kept_channels/{name}"] = float(count)
        return summary


def _shape_to_config(shape):
    """A JSON-friendly copy of an `input_shape` (tuples become lists)."""
    if shape is None:
        return None
    if all(d is None or isinstance(d, int) for d in shape):
        return list(shape)
    return [list(s) for s in shape]
