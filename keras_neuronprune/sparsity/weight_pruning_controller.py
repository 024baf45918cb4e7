"""`WeightPruningController`: drives weight-level sparsity during `fit`."""

import numbers

import keras
import numpy as np

from keras_neuronprune.core.pruning_controller import PruningController
from keras_neuronprune.sparsity import _distributions
from keras_neuronprune.sparsity import _selection
from keras_neuronprune.sparsity._data import DataCycler
from keras_neuronprune.sparsity._model_utils import masked_layers
from keras_neuronprune.sparsity._optimizer_slots import zero_slots
from keras_neuronprune.sparsity._validation import evaluate_schedule
from keras_neuronprune.sparsity._validation import validate_int
from keras_neuronprune.sparsity._validation import validate_sparsity
from keras_neuronprune.sparsity.methods import METHODS
from keras_neuronprune.sparsity.schedules import ConstantSparsity

_DEFAULTS = {
    "threshold": "fraction",
    "quality": None,
    "drop_fraction": 0.3,
    "drop_fraction_decay": "cosine",
    "shrink_ratio": 0.95,
    "penalty": 0.1,
    "penalty_rate": 0.1,
    "mask_init": 0.05,
}
_METHOD_ARGUMENTS = {
    "threshold": ("magnitude",),
    "quality": ("magnitude",),
    "drop_fraction": ("rigl",),
    "drop_fraction_decay": ("rigl",),
    "shrink_ratio": ("iss_p",),
    "penalty": ("scl",),
    "penalty_rate": ("scl",),
    "mask_init": ("scl",),
}


def _positive_pair(value, name):
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool)
            for v in value
        )
        and all(v >= 1 for v in value)
    )
    if not ok:
        raise ValueError(
            f"`{name}` must be a pair of positive ints. Received: "
            f"{name}={value!r}"
        )
    return (int(value[0]), int(value[1]))


def _number(value, name, low, high, low_open=False, high_open=True):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = np.isfinite(value)
        ok = ok and (value > low if low_open else value >= low)
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(
            f"`{name}` must be a number in {left}{low}, {high}{right}. "
            f"Received: {name}={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightPruningController(PruningController):
    """The `PruningController` of weight-level (unstructured) sparsity.

    `keras_neuronprune.sparsity.prune_weights` creates it and attaches it
    to the returned `PrunedModel`; the callbacks
    `keras_neuronprune.callbacks.UpdatePruning` and `PruningSummaries` call
    its hooks during `fit`. It holds configuration only (its `get_config`
    round-trips); masks and learned scores live in the weight-masked
    layers, the step in `PrunedModel.pruning_step`. Calibration data is not
    part of the config: after loading a model whose method needs data
    (`snip` is done by then, but `rigl` and `nnrelief` need it during
    training) call `model.controller.set_data(data)`.

    Every time masks change, pruned kernel entries are set to exactly 0 and
    the optimizer slots (momentum, Adam moments, ...) of those entries are
    zeroed, so a pruned weight gets no update and stays zero; connections
    grown by RigL start at 0 with fresh slots.

    Args: see `keras_neuronprune.sparsity.prune_weights`, which documents
        every argument; `method` may also be `"fixed"` (keep the current
        masks, as `reinitialize` does).

    Raises:
        ValueError: for an argument out of range or one that does not apply
            to `method`.

    Example:
    ```python
    pruned = keras_neuronprune.sparsity.prune_weights(model, sparsity=0.8)
    pruned.controller.get_config()["method"]  # "magnitude"
    ```
    """

    def __init__(
        self,
        method="magnitude",
        sparsity=None,
        schedule=None,
        distribution=None,
        block_size=None,
        sparsity_m_by_n=None,
        threshold="fraction",
        quality=None,
        update_frequency=None,
        drop_fraction=0.3,
        drop_fraction_decay="cosine",
        end_step=None,
        shrink_ratio=0.95,
        penalty=0.1,
        penalty_rate=0.1,
        mask_init=0.05,
        num_batches=1,
        loss=None,
        seed=None,
        xnnpack_sparse=False,
    ):
        if method not in METHODS:
            raise ValueError(
                f"`method` must be one of {sorted(METHODS)}. "
                f"Received: method={method!r}"
            )
        self.method = method
        method_cls = METHODS[method]
        given = {
            "threshold": threshold,
            "quality": quality,
            "drop_fraction": drop_fraction,
            "drop_fraction_decay": drop_fraction_decay,
            "shrink_ratio": shrink_ratio,
            "penalty": penalty,
            "penalty_rate": penalty_rate,
            "mask_init": mask_init,
        }
        for name, value in given.items():
            if method not in _METHOD_ARGUMENTS[name] and (
                value != _DEFAULTS[name]
            ):
                raise ValueError(
                    f"`{name}` only applies to method="
                    f"{' or '.join(repr(m) for m in _METHOD_ARGUMENTS[name])}"
                    f". Received: {name}={value!r} with method={method!r}"
                )

        self.sparsity = (
            None
            if sparsity is None
            else validate_sparsity(sparsity, "sparsity")
        )
        self.block_size = (
            None
            if block_size is None
            else _positive_pair(block_size, "block_size")
        )
        self.sparsity_m_by_n = None
        if sparsity_m_by_n is not None:
            m, n = _positive_pair(sparsity_m_by_n, "sparsity_m_by_n")
            if m >= n:
                raise ValueError(
                    "`sparsity_m_by_n` must be (m, n) with m < n (m zeros in "
                    f"every n weights). Received: sparsity_m_by_n={(m, n)!r}"
                )
            self.sparsity_m_by_n = (m, n)
        if (self.block_size or self.sparsity_m_by_n) and (
            not method_cls.supports_patterns
        ):
            raise ValueError(
                f"method={method!r} prunes single weights only; "
                "`block_size` and `sparsity_m_by_n` are not supported. "
                f"Received: block_size={block_size!r}, "
                f"sparsity_m_by_n={sparsity_m_by_n!r}"
            )
        if self.block_size and self.sparsity_m_by_n:
            raise ValueError(
                "Give `block_size` or `sparsity_m_by_n`, not both. Received: "
                f"block_size={block_size!r}, sparsity_m_by_n="
                f"{sparsity_m_by_n!r}"
            )
        if self.sparsity_m_by_n:
            m, n = self.sparsity_m_by_n
            if self.sparsity is not None and abs(self.sparsity - m / n) > 1e-9:
                raise ValueError(
                    f"`sparsity_m_by_n`={self.sparsity_m_by_n!r} means a "
                    f"sparsity of {m / n:g}; `sparsity` must be None or "
                    f"equal to it. Received: sparsity={sparsity!r}"
                )
            self.sparsity = m / n

        if threshold not in ("fraction", "std"):
            raise ValueError(
                "`threshold` must be 'fraction' or 'std'. "
                f"Received: threshold={threshold!r}"
            )
        self.threshold = threshold
        self.quality = None
        if threshold == "std":
            if quality is None:
                raise ValueError(
                    "threshold='std' prunes |w| < quality * std(W): give "
                    "`quality` (> 0). Received: quality=None"
                )
            self.quality = _number(quality, "quality", 0, np.inf, True)
            if self.sparsity is not None:
                raise ValueError(
                    "threshold='std' decides the sparsity itself; `sparsity` "
                    f"must be None. Received: sparsity={sparsity!r}"
                )
            if self.block_size or self.sparsity_m_by_n:
                raise ValueError(
                    "threshold='std' prunes single weights; `block_size` and "
                    "`sparsity_m_by_n` need threshold='fraction'."
                )
        elif quality is not None:
            raise ValueError(
                "`quality` only applies to threshold='std'. "
                f"Received: quality={quality!r}"
            )

        if distribution is None:
            distribution = method_cls.default_distribution
        if distribution not in method_cls.distributions:
            raise ValueError(
                "`distribution` must be one of "
                f"{list(method_cls.distributions)} for method={method!r}. "
                "Received: distribution="
                f"{distribution!r}"
            )
        self.distribution = distribution

        self.update_frequency = (
            method_cls.default_update_frequency
            if update_frequency is None
            else validate_int(update_frequency, "update_frequency", 1)
        )
        self.drop_fraction = _number(
            drop_fraction, "drop_fraction", 0, 1, low_open=True
        )
        if drop_fraction_decay not in ("cosine", "constant"):
            raise ValueError(
                "`drop_fraction_decay` must be 'cosine' or 'constant'. "
                f"Received: drop_fraction_decay={drop_fraction_decay!r}"
            )
        self.drop_fraction_decay = drop_fraction_decay
        self.end_step = (
            None if end_step is None else validate_int(end_step, "end_step", 1)
        )
        self.shrink_ratio = _number(shrink_ratio, "shrink_ratio", 0, 1)
        self.penalty = _number(penalty, "penalty", 0, np.inf)
        self.penalty_rate = _number(
            penalty_rate, "penalty_rate", 0, np.inf, low_open=True
        )
        self.mask_init = _number(mask_init, "mask_init", 0, np.inf, True)
        self.num_batches = validate_int(num_batches, "num_batches", 1)
        if seed is not None:
            seed = validate_int(seed, "seed", 0)
        self.seed = seed
        self.loss = loss
        self.xnnpack_sparse = bool(xnnpack_sparse)

        self.schedule = self._resolve_schedule(method_cls, schedule, sparsity)
        if method in ("rigl", "iss_p") and self.end_step is None:
            raise ValueError(
                f"method={method!r} needs `end_step` (the step at which "
                + (
                    "mask updates stop, T_end"
                    if method == "rigl"
                    else "soft shrinkage ends and weights are hard-pruned"
                )
                + "). Received: end_step=None"
            )
        self._method = method_cls(self)
        self._data = None
        self._loss_fn = None
        self.fallback_loss = None
        self._layers = None
        self._layers_model = None
        self._stats = None

    def _resolve_schedule(self, method_cls, schedule, sparsity):
        name = method_cls.name
        if not method_cls.uses_schedule:
            if schedule is not None:
                raise ValueError(
                    f"method={name!r} does not follow a sparsity schedule; "
                    f"`schedule` must be None. Received: schedule={schedule!r}"
                )
            if name in ("snip", "rigl") and self.sparsity is None:
                raise ValueError(
                    f"method={name!r} needs `sparsity` (a number in [0, 1)). "
                    "Received: sparsity=None"
                )
            return None
        if schedule is not None:
            if not callable(schedule):
                raise TypeError(
                    "`schedule` must be callable as schedule(step) -> "
                    "(should_prune, sparsity). Received: schedule of type "
                    f"{type(schedule).__name__}"
                )
            # keras_neuronprune schedules carry their target as
            # `final_ratio` (None until bound to the target).
            final = getattr(schedule, "final_ratio", None)
            if final is None and self.sparsity is not None:
                if hasattr(schedule, "bind"):
                    schedule = schedule.bind(self.sparsity)
                    final = self.sparsity
            if (
                final is not None
                and self.sparsity is not None
                and not self.sparsity_m_by_n
                and abs(float(final) - self.sparsity) > 1e-9
            ):
                raise ValueError(
                    f"`sparsity` ({sparsity!r}) disagrees with the schedule's "
                    f"final sparsity ({float(final)!r}); give one of them."
                )
            if self.sparsity is None and final is not None:
                self.sparsity = validate_sparsity(
                    float(final), "schedule.final_ratio"
                )
            return schedule
        if self.threshold == "std":
            return ConstantSparsity(0.0, 0, -1, 100)
        if self.sparsity is None:
            if name == "scl":
                return None
            raise ValueError(
                f"method={name!r} needs `sparsity` (a number in [0, 1)) or a "
                "`schedule`. Received: sparsity=None, schedule=None"
            )
        frequency = {"iss_p": 1, "scl": self.update_frequency}.get(name, 100)
        return ConstantSparsity(self.sparsity, 0, -1, frequency)

    @property
    def algorithm(self):
        """The method object (`last_scores`, RigL's `last_update`, ...)."""
        return self._method

    # Runtime helpers used by the methods.

    def set_data(self, data):
        """Attaches calibration / gradient data (`(x, y)` batches)."""
        self._data = None if data is None else DataCycler(data)

    def data_cycler(self):
        if self._data is None:
            raise ValueError(
                f"method={self.method!r} needs `data` (batches of (x, y)). "
                "Pass `data=` to prune_weights, or after loading a saved "
                "model call `model.controller.set_data(data)`. "
                "Received: data=None"
            )
        return self._data

    def loss_fn(self, model):
        if self._loss_fn is None:
            from keras_neuronprune.utils.gradients import resolve_loss

            # Explicit `loss`, else the pruned model's compiled loss, else
            # the loss the user's model was compiled with (SNIP and RigL's
            # initial masks are computed before the pruned model is).
            loss = self.loss
            for candidate in (getattr(model, "loss", None), self.fallback_loss):
                if loss is None:
                    loss = candidate
            if loss is None or (isinstance(loss, dict) and not loss):
                raise ValueError(
                    f"method={self.method!r} needs a loss for its gradients: "
                    "pass `loss=` to prune_weights or compile the model "
                    "first. Received: loss=None"
                )
            self._loss_fn = resolve_loss(loss)
        return self._loss_fn

    def schedule_at(self, step):
        if self.schedule is None:
            return False, self.sparsity or 0.0
        should_prune, sparsity = evaluate_schedule(self.schedule, int(step))
        if self.sparsity_m_by_n:
            sparsity = self.sparsity
        return should_prune, sparsity

    @property
    def final_sparsity(self):
        if self.sparsity is not None:
            return self.sparsity
        if self.schedule is not None:
            step = self.end_step or getattr(self.schedule, "end_step", 0)
            return evaluate_schedule(self.schedule, max(int(step), 0))[1]
        return 0.0

    def layer_sparsities(self, shapes, sparsity):
        return _distributions.layer_sparsities(
            shapes, sparsity, self.distribution
        )

    def pattern(self):
        return _selection.Pattern(self.block_size, self.sparsity_m_by_n)

    def masks_for(self, layers, scores, sparsity):
        """Masks keeping the best scores at `sparsity` (per distribution)."""
        pattern = self.pattern()
        axes = {name: layer.num_output_axes for name, layer in layers}
        if self.distribution == "global":
            return _selection.global_masks(scores, sparsity, pattern, axes)
        shapes = {name: tuple(np.shape(scores[name])) for name, _ in layers}
        per_layer = self.layer_sparsities(shapes, sparsity)
        return {
            name: _selection.local_mask(
                scores[name], per_layer[name], pattern, axes[name]
            )
            for name, _ in layers
        }

    def apply_masks(self, model, layers, masks, reset=None):
        """Writes masks, zeroes pruned weights and their optimizer slots.

        Args:
            model: the `PrunedModel`.
            layers: `[(name, layer)]`.
            masks: dict name -> 0/1 array of the kernel's shape.
            reset: optional dict name -> 0/1 array of entries whose
                optimizer slots must be zeroed although they are kept
                (connections grown by RigL).
        """
        optimizer = getattr(model, "optimizer", None)
        for name, layer in layers:
            if name not in masks:
                continue
            mask = np.asarray(masks[name], dtype="float32")
            layer.kernel_mask.assign(mask)
            variable = layer.kernel_variable
            kernel = np.asarray(variable.numpy())
            variable.assign(kernel * mask.astype(kernel.dtype))
            keep = mask
            if reset is not None and name in reset:
                keep = mask * (1.0 - np.asarray(reset[name], "float32"))
            zero_slots(optimizer, variable, keep)
        self.mark_changed()

    def mark_changed(self):
        self._stats = None

    def layers_of(self, model):
        if self._layers is None or self._layers_model is not model:
            self._layers = masked_layers(model)
            self._layers_model = model
        return self._layers

    # Hooks called by the callbacks.

    def initialize(self, model):
        """Called once by `prune_weights` (SNIP and RigL set masks here)."""
        layers = self.layers_of(model)
        self._method.initialize(model, layers)

    def on_train_begin(self, model):
        layers = self.layers_of(model)
        if not layers:
            raise ValueError(
                f"The model {model.name!r} has no weight-masked layers; it "
                "was not created by keras_neuronprune.sparsity.prune_weights."
            )
        if self._method.needs_data:
            self.data_cycler()
        optimizer = getattr(model, "optimizer", None)
        # Re-impose the masks: a restored or reloaded model, or a user's
        # set_weights, may have left values under pruned entries.
        for _, layer in layers:
            if layer.learned_mask and float(layer.mask_frozen.numpy()) < 0.5:
                continue
            mask = np.asarray(layer.kernel_mask.numpy())
            variable = layer.kernel_variable
            kernel = np.asarray(variable.numpy())
            variable.assign(kernel * mask.astype(kernel.dtype))
            zero_slots(optimizer, variable, mask)
        self._method.on_train_begin(model, layers)
        self.mark_changed()

    def on_train_batch_begin(self, model, step):
        self._method.on_train_batch_begin(model, self.layers_of(model), step)

    def on_train_batch_end(self, model, step, logs=None):
        self._method.on_train_batch_end(model, self.layers_of(model), step)

    def on_epoch_end(self, model, epoch, logs=None):
        if self.method == "scl":
            self.mark_changed()

    # Reporting.

    def layer_stats(self, model):
        """dict name -> (pruned count, total count) of every masked kernel."""
        if self._stats is None:
            stats = {}
            for name, layer in self.layers_of(model):
                mask = layer.current_mask()
                stats[name] = (int(mask.size - mask.sum()), int(mask.size))
            self._stats = stats
        return self._stats

    def summary_scalars(self, model):
        stats = self.layer_stats(model)
        pruned = sum(p for p, _ in stats.values())
        total = sum(t for _, t in stats.values())
        scalars = {"sparsity": pruned / total if total else 0.0}
        if self.schedule is not None and hasattr(model, "pruning_step"):
            step = int(np.asarray(model.pruning_step.numpy()))
            scalars["target_sparsity"] = self.schedule_at(step)[1]
        elif self.sparsity is not None:
            scalars["target_sparsity"] = self.sparsity
        for name, (p, t) in stats.items():
            scalars[f"sparsity/{name}"] = p / t if t else 0.0
        scalars.update(self._method.scalars(model, self.layers_of(model)))
        return scalars

    def importance_histograms(self, model):
        return self._method.histograms(model, self.layers_of(model))

    def strip(self, model):
        from keras_neuronprune.sparsity.strip_weight_pruning import (
            strip_weight_pruning,
        )

        return strip_weight_pruning(model)

    def get_config(self):
        schedule = self.schedule
        if self._method.uses_schedule and schedule is not None:
            if not hasattr(schedule, "get_config"):
                raise TypeError(
                    "The pruning schedule cannot be saved: "
                    f"{type(schedule).__name__} has no `get_config`. Use a "
                    "keras_neuronprune.sparsity.schedules schedule, or add "
                    "`get_config` and register the class with "
                    "keras.saving.register_keras_serializable."
                )
            schedule = keras.saving.serialize_keras_object(schedule)
        loss = self.loss
        if loss is not None and not isinstance(loss, str):
            loss = keras.saving.serialize_keras_object(loss)
        return {
            "method": self.method,
            "sparsity": None if self.sparsity_m_by_n else self.sparsity,
            "schedule": schedule,
            "distribution": self.distribution,
            "block_size": self.block_size,
            "sparsity_m_by_n": self.sparsity_m_by_n,
            "threshold": self.threshold,
            "quality": self.quality,
            "update_frequency": self.update_frequency,
            "drop_fraction": self.drop_fraction,
            "drop_fraction_decay": self.drop_fraction_decay,
            "end_step": self.end_step,
            "shrink_ratio": self.shrink_ratio,
            "penalty": self.penalty,
            "penalty_rate": self.penalty_rate,
            "mask_init": self.mask_init,
            "num_batches": self.num_batches,
            "loss": loss,
            "seed": self.seed,
            "xnnpack_sparse": self.xnnpack_sparse,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("schedule"), dict):
            config["schedule"] = keras.saving.deserialize_keras_object(
                config["schedule"]
            )
        if isinstance(config.get("loss"), dict):
            config["loss"] = keras.saving.deserialize_keras_object(
                config["loss"]
            )
        for key in ("block_size", "sparsity_m_by_n"):
            if config.get(key) is not None:
                config[key] = tuple(config[key])
        return cls(**config)
