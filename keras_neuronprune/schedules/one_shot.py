"""`OneShot`: prune everything at once after a number of steps."""

import keras

from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule
from keras_neuronprune.schedules.base_pruning_schedule import _validate_ratio
from keras_neuronprune.schedules.base_pruning_schedule import _validate_step


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class OneShot(PruningSchedule):
    """Prunes to the final ratio once, at training step `step`.

    This is the schedule of RNI, Network Slimming and Li et al. (L1): train
    (with the criterion's regulariser) for `step` steps, prune once, then
    keep training to fine-tune. `step=0` prunes before the first batch.

    Args:
        step: the training step at which to prune.
        ratio: the pruning ratio; None takes the target given to
            `prune_structured`.

    Example:
    ```python
    schedule = keras_neuronprune.schedules.OneShot(step=500)
    schedule(499)  # (False, 0.0)
    ```

    Reference:
        Suteu & Guo, "Receding Neuron Importances for Structured Pruning",
        arXiv:2204.06404.
    """

    def __init__(self, step=0, ratio=None):
        self.step = _validate_step("step", step)
        self._final_ratio = _validate_ratio("ratio", ratio, allow_none=True)

    def __call__(self, step):
        ratio = self.final_ratio or 0.0
        if step < self.step:
            return False, 0.0
        return step == self.step, ratio

    def get_config(self):
        return {"step": self.step, "ratio": self.final_ratio}
