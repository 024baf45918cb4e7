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
from keras_neuronprune.sparsity.methods import METHOD_ARGUMENTS
from keras_neuronprune.sparsity.methods import METHODS
from keras_neuronprune.sparsity.methods import MethodContext
from keras_neuronprune.sparsity.methods import get_method
from keras_neuronprune.sparsity.schedules import ConstantSparsity
from keras_neuronprune.utils.validation import check_fraction


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


def _resolve_pattern(block_size, sparsity_m_by_n, sparsity, method):
    """Checks the pruning pattern; returns `(block, m_by_n, sparsity)`."""
    block = (
        None if block_size is None else _positive_pair(block_size, "block_size")
    )
    m_by_n = None
    if sparsity_m_by_n is not None:
        m_by_n = _positive_pair(sparsity_m_by_n, "sparsity_m_by_n")
        if m_by_n[0] >= m_by_n[1]:
            raise ValueError(
                "`sparsity_m_by_n` must be (m, n) with m < n (m zeros in "
                f"every n weights). Received: sparsity_m_by_n={m_by_n!r}"
            )
    if (block or m_by_n) and not method.supports_patterns:
        raise ValueError(
            f"{method!r} prunes single weights only; `block_size` and "
            f"`sparsity_m_by_n` are not supported. Received: block_size="
            f"{block_size!r}, sparsity_m_by_n={sparsity_m_by_n!r}"
        )
    if block and m_by_n:
        raise ValueError(
            "Give `block_size` or `sparsity_m_by_n`, not both. Received: "
            f"block_size={block_size!r}, sparsity_m_by_n="
            f"{sparsity_m_by_n!r}"
        )
    if m_by_n:
        m, n = m_by_n
        if sparsity is not None and abs(sparsity - m / n) > 1e-9:
            raise ValueError(
                f"`sparsity_m_by_n`={m_by_n!r} means a sparsity of "
                f"{m / n:g}; `sparsity` must be None or equal to it. "
                f"Received: sparsity={sparsity!r}"
            )
        sparsity = m / n
    return block, m_by_n, sparsity


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class WeightPruningController(PruningController):
    """The `PruningController` of weight-level (unstructured) sparsity.

    `keras_neuronprune.sparsity.prune_weights` creates it and attaches it
    to the returned `PrunedModel`; the callbacks
    `keras_neuronprune.callbacks.UpdatePruning` and `PruningSummaries` call
    its hooks during `fit`. It holds the schedule, the pattern and the
    method object (whose hyper-parameters are its own, see
    `keras_neuronprune.sparsity.methods`); its `get_config` round-trips.
    Masks and learned scores live in the weight-masked layers, the step in
    `PrunedModel.pruning_step`. Calibration data is not part of the config:
    after loading a model whose method needs data (`snip` is done by then,
    but `rigl` and `nnrelief` need it during training) call
    `model.controller.set_data(data)`.

    Every time masks change, pruned kernel entries are set to exactly 0 and
    the optimizer slots (momentum, Adam moments, ...) of those entries are
    zeroed, so a pruned weight gets no update and stays zero; connections
    grown by RigL start at 0 with fresh slots.

    Args:
        method: a method name or object (see `prune_weights`); `"fixed"`
            (or `FixedMaskMethod()`) keeps the current masks, as
            `reinitialize` does.
        sparsity, schedule, distribution, block_size, sparsity_m_by_n,
            loss, xnnpack_sparse: see `prune_weights`.
        **kwargs: deprecated method hyper-parameters (`drop_fraction`,
            `end_step`, ...), forwarded to the method's constructor with a
            `DeprecationWarning`.

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
        loss=None,
        xnnpack_sparse=False,
        **kwargs,
    ):
        self._method = get_method(
            method, kwargs, where="WeightPruningController"
        )
        method = self._method
        if sparsity is not None:
            sparsity = check_fraction(sparsity, "sparsity")
        self.block_size, self.sparsity_m_by_n, self.sparsity = _resolve_pattern(
            block_size, sparsity_m_by_n, sparsity, method
        )
        if method.sets_sparsity and self.sparsity is not None:
            raise ValueError(
                f"{method!r} decides the sparsity itself; `sparsity` must "
                f"be None. Received: sparsity={sparsity!r}"
            )
        if distribution is None:
            distribution = method.default_distribution
        if distribution not in method.distributions:
            raise ValueError(
                "`distribution` must be one of "
                f"{list(method.distributions)} for method={method.name!r}. "
                f"Received: distribution={distribution!r}"
            )
        self.distribution = distribution
        self.loss = loss
        self.xnnpack_sparse = bool(xnnpack_sparse)
        self.schedule = self._resolve_schedule(schedule, sparsity)
        self._data = None
        self._loss_fn = None
        self.fallback_loss = None
        self._layers = None
        self._layers_model = None
        self._context = None
        self._stats = None

    def _resolve_schedule(self, schedule, sparsity):
        method = self._method
        name = method.name
        if not method.uses_schedule:
            if schedule is not None:
                raise ValueError(
                    f"method={name!r} does not follow a sparsity schedule; "
                    f"`schedule` must be None. Received: schedule={schedule!r}"
                )
            if method.needs_sparsity and self.sparsity is None:
                raise ValueError(
                    f"method={name!r} needs `sparsity` (a number in [0, 1)). "
                    "Received: sparsity=None"
                )
            return None
        if schedule is not None:
            return self._bind_schedule(schedule, sparsity)
        if method.sets_sparsity:
            return ConstantSparsity(0.0, 0, -1, 100)
        if self.sparsity is None:
            if not method.needs_sparsity:
                return None
            raise ValueError(
                f"method={name!r} needs `sparsity` (a number in [0, 1)) or a "
                "`schedule`. Received: sparsity=None, schedule=None"
            )
        frequency = method.default_schedule_frequency
        return ConstantSparsity(self.sparsity, 0, -1, frequency)

    def _bind_schedule(self, schedule, sparsity):
        if not callable(schedule):
            raise TypeError(
                "`schedule` must be callable as schedule(step) -> "
                "(should_prune, sparsity). Received: schedule of type "
                f"{type(schedule).__name__}"
            )
        # keras_neuronprune schedules carry their target as `final_ratio`
        # (None until bound to the target).
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
            self.sparsity = check_fraction(float(final), "schedule.final_ratio")
        return schedule

    @property
    def method(self):
        """The method's name (`"magnitude"`, `"rigl"`, ...)."""
        return self._method.name

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
            step = getattr(self._method, "end_step", None) or getattr(
                self.schedule, "end_step", 0
            )
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

    def context(self, model):
        """The `MethodContext` the method's hooks receive for `model`."""
        layers = self.layers_of(model)
        context = self._context
        if (
            context is None
            or context.model is not model
            or (context.layers is not layers)
        ):
            context = MethodContext(
                model,
                layers,
                sparsity=self.sparsity,
                distribution=self.distribution,
                schedule_at=self.schedule_at,
                final_sparsity=lambda: self.final_sparsity,
                select=lambda scores, sparsity: self.masks_for(
                    layers, scores, sparsity
                ),
                layer_sparsities=self.layer_sparsities,
                apply_masks=lambda masks, reset=None: self.apply_masks(
                    model, layers, masks, reset
                ),
                batches=lambda count: self.data_cycler().batches(count),
                loss=lambda: self.loss_fn(model),
                mark_changed=self.mark_changed,
            )
            self._context = context
        return context

    # Hooks called by the callbacks.

    def initialize(self, model):
        """Called once by `prune_weights` (SNIP and RigL set masks here)."""
        self._method.initialize(self.context(model))

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
        self._method.on_train_begin(self.context(model))
        self.mark_changed()

    def on_train_batch_begin(self, model, step):
        self._method.on_train_batch_begin(self.context(model), step)

    def on_train_batch_end(self, model, step, logs=None):
        self._method.on_train_batch_end(self.context(model), step)

    def on_epoch_end(self, model, epoch, logs=None):
        self._method.on_epoch_end(self.context(model))

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
        scalars.update(self._method.scalars(self.context(model)))
        return scalars

    def importance_histograms(self, model):
        return self._method.histograms(self.context(model))

    def strip(self, model, check=True):
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
            "method_config": self._method.get_config(),
            "sparsity": None if self.sparsity_m_by_n else self.sparsity,
            "schedule": schedule,
            "distribution": self.distribution,
            "block_size": self.block_size,
            "sparsity_m_by_n": self.sparsity_m_by_n,
            "loss": loss,
            "xnnpack_sparse": self.xnnpack_sparse,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("schedule", "loss"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        for key in ("block_size", "sparsity_m_by_n"):
            if config.get(key) is not None:
                config[key] = tuple(config[key])
        name = config.pop("method", "magnitude")
        method_config = config.pop("method_config", None)
        # Configurations saved before methods were objects hold the
        # hyper-parameters flat.
        legacy = {k: config.pop(k) for k in METHOD_ARGUMENTS if k in config}
        if method_config is None:
            method = get_method(
                name, legacy, where="WeightPruningController", warn=False
            )
        else:
            method = METHODS[name].from_config(method_config)
        return cls(method=method, **config)
