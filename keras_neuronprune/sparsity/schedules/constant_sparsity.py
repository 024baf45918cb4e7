"""`ConstantSparsity`: one target sparsity, re-applied at a fixed period."""

import keras

from keras_neuronprune.schedules import PruningSchedule
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class ConstantSparsity(PruningSchedule):
    """Prunes to `target_sparsity` every `frequency` steps.

    Same arguments and behaviour as tfmot's `ConstantSparsity`: masks are
    updated at `begin_step`, `begin_step + frequency`, ... up to `end_step`
    (-1: forever), always to the same sparsity. It is a
    `keras_neuronprune.schedules.PruningSchedule` whose ratio is the
    sparsity (fraction of zero weights); for gradual pruning use
    `keras_neuronprune.schedules.PolynomialDecay` (tfmot's formula, also
    re-exported here).

    Args:
        target_sparsity: fraction of zero weights, in [0, 1).
        begin_step: first step at which masks are updated.
        end_step: last step at which masks may be updated, -1 for no end.
        frequency: number of steps between mask updates.

    Raises:
        ValueError: for an argument out of range.

    Example:
    ```python
    schedule = keras_neuronprune.sparsity.schedules.ConstantSparsity(
        0.8, begin_step=200, frequency=100)
    schedule(200)  # (True, 0.8)
    ```

    Reference:
        tfmot `tfmot.sparsity.keras.ConstantSparsity`.
    """

    def __init__(
        self, target_sparsity, begin_step=0, end_step=-1, frequency=100
    ):
        self.target_sparsity = check_fraction(
            target_sparsity, "target_sparsity"
        )
        self._final_ratio = self.target_sparsity
        self.begin_step = check_int(begin_step, "begin_step", 0)
        self.end_step = check_int(
            end_step, "end_step", self.begin_step, allow=(-1,)
        )
        self.frequency = check_int(frequency, "frequency", 1)

    def __call__(self, step):
        step = int(step)
        in_range = step >= self.begin_step and (
            self.end_step == -1 or step <= self.end_step
        )
        turn = (step - self.begin_step) % self.frequency == 0
        return bool(in_range and turn), self.target_sparsity

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }
