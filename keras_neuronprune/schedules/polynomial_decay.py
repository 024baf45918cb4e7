"""`PolynomialDecay`: raise the pruning ratio along a polynomial curve."""

import keras

from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int
from keras_neuronprune.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class PolynomialDecay(PruningSchedule):
    """Gradual pruning along a polynomial curve (Zhu & Gupta, 2017).

    Between `begin_step` and `end_step` the ratio follows
    `final + (initial - final) * (1 - p) ** power` with
    `p = (step - begin_step) / (end_step - begin_step)`; masks are updated
    every `frequency` steps and once more at `end_step` (unless
    `prune_at_end_step=False`, tfmot's behaviour: only on the `frequency`
    grid). Same arguments and formula as tfmot's `PolynomialDecay` (with
    ratios in place of sparsities); a tfmot `PolynomialDecay` given to
    `prune_structured` is converted to this class, so the model saves.

    Args:
        initial_pruning_ratio: fraction of channels removed at
            `begin_step`.
        final_pruning_ratio: fraction of channels removed at `end_step`;
            None takes the target given to `prune_structured`.
        begin_step: first pruning step.
        end_step: last pruning step (> `begin_step`).
        power: exponent of the curve (3 prunes fast first, then slowly).
        frequency: steps between two mask updates.
        prune_at_end_step: also update the masks at `end_step` when it is
            not on the `frequency` grid.
        **kwargs: `initial_ratio` and `final_ratio`, the deprecated
            spellings of `initial_pruning_ratio` and `final_pruning_ratio`
            (accepted with a `DeprecationWarning`).

    Example:
    ```python
    schedule = keras_neuronprune.schedules.PolynomialDecay(
        final_pruning_ratio=0.5, begin_step=0, end_step=1000, frequency=100
    )
    ```

    Reference:
        Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of
        pruning for model compression", arXiv:1710.01878.
    """

    _RENAMED = {
        "initial_ratio": "initial_pruning_ratio",
        "final_ratio": "final_pruning_ratio",
    }
    _FINAL_KEY = "final_pruning_ratio"

    def __init__(
        self,
        initial_pruning_ratio=0.0,
        final_pruning_ratio=None,
        begin_step=0,
        end_step=1000,
        power=3,
        frequency=100,
        prune_at_end_step=True,
        **kwargs,
    ):
        # Messages name the spelling the caller used.
        self._names = tuple(
            old if old in kwargs else new for old, new in self._RENAMED.items()
        )
        if "initial_ratio" in kwargs:
            # The old default was 0.0: only a value given twice conflicts.
            initial_pruning_ratio = pop_renamed(
                kwargs,
                "initial_ratio",
                "initial_pruning_ratio",
                None if initial_pruning_ratio == 0.0 else initial_pruning_ratio,
                where="PolynomialDecay",
            )
        final_pruning_ratio = pop_renamed(
            kwargs,
            "final_ratio",
            "final_pruning_ratio",
            final_pruning_ratio,
            where="PolynomialDecay",
        )
        reject_unknown(kwargs, "PolynomialDecay")
        self.initial_ratio = check_fraction(
            initial_pruning_ratio, self._names[0]
        )
        self._final_ratio = check_fraction(
            final_pruning_ratio, self._names[1], allow_none=True
        )
        self.begin_step = check_int(begin_step, "begin_step", 0)
        self.end_step = check_int(end_step, "end_step", 0)
        if self.end_step <= self.begin_step:
            raise ValueError(
                "`end_step` must be greater than `begin_step` "
                f"({self.begin_step}). Received: end_step={end_step!r}"
            )
        check_positive(power, "power")
        self.power = power
        self.frequency = check_int(frequency, "frequency", 1)
        if not isinstance(prune_at_end_step, bool):
            raise ValueError(
                "`prune_at_end_step` must be True or False. Received: "
                f"prune_at_end_step={prune_at_end_step!r}"
            )
        self.prune_at_end_step = prune_at_end_step
        self._check_order()

    def _check_order(self):
        initial, final = self._names
        if self.final_ratio is not None and (
            self.final_ratio < self.initial_ratio
        ):
            raise ValueError(
                f"`{final}` must be >= `{initial}` "
                f"({self.initial_ratio}). Received: "
                f"{final}={self.final_ratio!r}"
            )

    def bind(self, final_ratio, num_channels=None):
        bound = super().bind(final_ratio, num_channels)
        bound._check_order()
        return bound

    def __call__(self, step):
        final = self.final_ratio
        if final is None:
            raise ValueError(
                "`PolynomialDecay` has no `final_pruning_ratio`; pass it to "
                "`prune_structured` (which binds it) or set it. "
                "Received: final_pruning_ratio=None"
            )
        if step < self.begin_step:
            return False, 0.0
        p = min(
            1.0, (step - self.begin_step) / (self.end_step - self.begin_step)
        )
        ratio = final + (self.initial_ratio - final) * (1.0 - p) ** self.power
        should_prune = step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0
            or (self.prune_at_end_step and step == self.end_step)
        )
        return should_prune, float(ratio)

    def get_config(self):
        return {
            "initial_pruning_ratio": self.initial_ratio,
            "final_pruning_ratio": self.final_ratio,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
            "prune_at_end_step": self.prune_at_end_step,
        }
