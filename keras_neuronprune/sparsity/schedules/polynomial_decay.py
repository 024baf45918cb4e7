"""`PolynomialDecay`: sparsity that rises polynomially between two steps."""

import numbers

import keras

from keras_neuronprune.sparsity.schedules.base_pruning_schedule import (
    PruningSchedule,
)
from keras_neuronprune.sparsity.schedules.base_pruning_schedule import (
    validate_int,
)
from keras_neuronprune.sparsity.schedules.base_pruning_schedule import (
    validate_sparsity,
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class PolynomialDecay(PruningSchedule):
    """Sparsity going from `initial_sparsity` to `final_sparsity`.

    Same formula as tfmot's `PolynomialDecay` (Zhu & Gupta's gradual
    pruning): at step t in [begin_step, end_step],
    `s(t) = final + (initial - final) * (1 - p) ** power` with
    `p = (t - begin_step) / (end_step - begin_step)`, and masks are updated
    every `frequency` steps inside that range and at `end_step` itself
    (tfmot skips `end_step` when it is not on the period, which leaves the
    model short of `final_sparsity`).

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity at `end_step`, in [0, 1).
        begin_step: first step at which masks are updated.
        end_step: step at which `final_sparsity` is reached (> begin_step).
        power: exponent of the polynomial (3 in tfmot and the paper).
        frequency: number of steps between mask updates.

    Raises:
        ValueError: for an argument out of range.

    Example:
    ```python
    schedule = keras_neuronprune.sparsity.schedules.PolynomialDecay(
        0.0, 0.9, begin_step=0, end_step=1000)
    ```

    Reference:
        Zhu & Gupta, "To prune, or not to prune", arXiv:1710.01878.
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        self.initial_sparsity = validate_sparsity(
            initial_sparsity, "initial_sparsity"
        )
        self.final_sparsity_value = validate_sparsity(
            final_sparsity, "final_sparsity"
        )
        self.begin_step = validate_int(begin_step, "begin_step", 0)
        self.end_step = validate_int(end_step, "end_step", self.begin_step + 1)
        if not isinstance(power, numbers.Real) or power <= 0:
            raise ValueError(
                f"`power` must be a positive number. Received: power={power!r}"
            )
        self.power = float(power)
        self.frequency = validate_int(frequency, "frequency", 1)

    def sparsity_at(self, step):
        span = self.end_step - self.begin_step
        p = min(1.0, max(0.0, (int(step) - self.begin_step) / span))
        return (
            self.final_sparsity_value
            + (self.initial_sparsity - self.final_sparsity_value)
            * (1.0 - p) ** self.power
        )

    def __call__(self, step):
        step = int(step)
        # Unlike tfmot, `end_step` itself always prunes, so the final
        # sparsity is reached even when the range is not a whole number
        # of periods.
        should_prune = self._in_range_and_turn(step) or step == self.end_step
        return should_prune, self.sparsity_at(step)

    @property
    def final_sparsity(self):
        return self.final_sparsity_value

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity_value,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }
