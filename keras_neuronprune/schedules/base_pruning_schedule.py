"""`PruningSchedule`: when to prune, and how much, at each training step."""

import copy

import keras

from keras_neuronprune.utils.validation import check_fraction


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class PruningSchedule:
    """Base class of pruning schedules.

    A schedule is a callable `schedule(step) -> (should_prune, ratio)`, the
    signature of tfmot's `PruningSchedule`: at training step `step` (the
    `PrunedModel.pruning_step`), `should_prune` says whether the pruning
    controller updates the masks, and `ratio` is the pruning ratio (fraction
    of prunable channels removed) to have reached after that update.
    `prune_structured` accepts any object with this signature; objects that
    are not `PruningSchedule`s are used as they are.

    A schedule may leave its final ratio unset (`None`); `prune_structured`
    then binds it to its own target with `bind`. With `flops_pruning_ratio`
    or a `pruning_ratio_dict` and no `pruning_ratio`, the final ratio is
    bound to 1.0 and the returned ratio is read as the fraction of the
    target reached (0.5: halfway to the FLOPs target).

    Subclasses implement `__call__` and `get_config`, validate their
    arguments with `keras_neuronprune.utils.validation` and are registered
    serialisable under `keras_neuronprune`. A subclass that renamed an
    argument lists `{old: new}` in `_RENAMED`: `from_config` then reads
    configs saved with the old names.
    """

    _RENAMED = {}
    # The config key of the final ratio; a schedule bound to 1.0 (a FLOPs
    # or per-layer target) saves 1.0 there, which `from_config` binds again.
    _FINAL_KEY = None

    def __call__(self, step):
        raise NotImplementedError

    @property
    def final_ratio(self):
        """The ratio the schedule ends at (None until bound)."""
        return getattr(self, "_final_ratio", None)

    def bind(self, final_ratio, num_channels=None):
        """Returns a copy whose unset final ratio is `final_ratio`.

        Args:
            final_ratio: the target ratio, used when the schedule has none.
            num_channels: number of prunable channels of the model (for
                schedules that count channels).
        """
        bound = copy.copy(self)
        if bound.final_ratio is None:
            bound._final_ratio = check_fraction(
                final_ratio, "final_ratio", include_one=True
            )
        return bound

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        # Configs saved before a rename load without a warning.
        config = {cls._RENAMED.get(k, k): v for k, v in config.items()}
        key = cls._FINAL_KEY
        if key is not None and config.get(key) == 1.0:
            config[key] = None
            return cls(**config).bind(1.0, config.get("num_channels"))
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def check_schedule_output(schedule, step):
    """Calls `schedule(step)` and validates its `(should_prune, ratio)`.

    Raises:
        ValueError: naming the schedule and what it returned.
    """
    result = schedule(step)
    try:
        should_prune, ratio = result
        should_prune = bool(should_prune)
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise ValueError(
            f"A pruning schedule must return `(should_prune, ratio)`; "
            f"{schedule!r} returned {result!r} at step {step}."
        ) from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(
            f"A pruning schedule must return a ratio in [0, 1]; {schedule!r} "
            f"returned ratio={ratio!r} at step {step}."
        )
    return should_prune, ratio
