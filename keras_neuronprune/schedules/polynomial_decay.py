"""`PolynomialDecay`: raise the pruning ratio along a polynomial curve."""

import keras

from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule
from keras_neuronprune.schedules.base_pruning_schedule import _validate_ratio
from keras_neuronprune.schedules.base_pruning_schedule import _validate_step


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
        initial_ratio: ratio at `begin_step`.
        final_ratio: ratio at `end_step`; None takes the target given to
            `prune_structured`.
        begin_step: first pruning step.
        end_step: last pruning step (> `begin_step`).
        power: exponent of the curve (3 prunes fast first, then slowly).
        frequency: steps between two mask updates.
        prune_at_end_step: also update the masks at `end_step` when it is
            not on the `frequency` grid.

    Example:
    ```python
    schedule = keras_neuronprune.schedules.PolynomialDecay(
        final_ratio=0.5, begin_step=0, end_step=1000, frequency=100
    )
    ```

    Reference:
        Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of
        pruning for model compression", arXiv:1710.01878.
    """

    def __init__(
        self,
        initial_ratio=0.0,
        final_ratio=None,
        begin_step=0,
        end_step=1000,
        power=3,
        frequency=100,
        prune_at_end_step=True,
    ):
        self.initial_ratio = _validate_ratio("initial_ratio", initial_ratio)
        self._final_ratio = _validate_ratio(
            "final_ratio", final_ratio, allow_none=True
        )
        self.begin_step = _validate_step("begin_step", begin_step)
        self.end_step = _validate_step("end_step", end_step)
        if self.end_step <= self.begin_step:
            raise ValueError(
                "`end_step` must be greater than `begin_step` "
                f"({self.begin_step}). Received: end_step={end_step!r}"
            )
        if isinstance(power, bool) or not isinstance(power, (int, float)):
            raise ValueError(
                f"`power` must be a number. Received: power={power!r}"
            )
        if not power > 0:
            raise ValueError(f"`power` must be > 0. Received: power={power!r}")
        self.power = power
        self.frequency = _validate_step("frequency", frequency, minimum=1)
        if not isinstance(prune_at_end_step, bool):
            raise ValueError(
                "`prune_at_end_step` must be True or False. Received: "
                f"prune_at_end_step={prune_at_end_step!r}"
            )
        self.prune_at_end_step = prune_at_end_step
        self._check_order()

    def _check_order(self):
        if self.final_ratio is not None and (
            self.final_ratio < self.initial_ratio
        ):
            raise ValueError(
                "`final_ratio` must be >= `initial_ratio` "
                f"({self.initial_ratio}). Received: "
                f"final_ratio={self.final_ratio!r}"
            )

    def bind(self, final_ratio, num_channels=None):
        bound = super().bind(final_ratio, num_channels)
        bound._check_order()
        return bound

    def __call__(self, step):
        final = self.final_ratio
        if final is None:
            raise ValueError(
                "`PolynomialDecay` has no `final_ratio`; pass it to "
                "`prune_structured` (which binds it) or set it. "
                "Received: final_ratio=None"
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
            "initial_ratio": self.initial_ratio,
            "final_ratio": self.final_ratio,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
            "prune_at_end_step": self.prune_at_end_step,
        }
