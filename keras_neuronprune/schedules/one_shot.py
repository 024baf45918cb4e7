"""`OneShot`: prune everything at once after a number of steps."""

import keras

from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class OneShot(PruningSchedule):
    """Prunes to the final ratio once, at training step `step`.

    This is the schedule of RNI, Network Slimming and Li et al. (L1): train
    (with the criterion's regulariser) for `step` steps, prune once, then
    keep training to fine-tune. `step=0` prunes before the first batch.

    With `fraction` instead of `step`, the step is set when the first
    `fit` begins: after `fraction` of its steps (`fraction=0.5` trains the
    sparsity in for the first half and fine-tunes in the second). This is
    the default schedule of `prune_structured(criterion="rni")`.

    Args:
        step: the training step at which to prune; with `fraction`, the
            planned step (None until `fit` plans it).
        pruning_ratio: the fraction of channels to remove; None takes the
            target given to `prune_structured`.
        fraction: prune after this share of the first `fit`'s steps, in
            [0, 1].
        **kwargs: `ratio`, the deprecated spelling of `pruning_ratio`
            (accepted with a `DeprecationWarning`).

    Example:
    ```python
    schedule = keras_neuronprune.schedules.OneShot(step=500)
    schedule(499)  # (False, 0.0)
    half = keras_neuronprune.schedules.OneShot(step=None, fraction=0.5)
    ```

    Reference:
        Suteu & Guo, "Receding Neuron Importances for Structured Pruning",
        arXiv:2204.06404.
    """

    _RENAMED = {"ratio": "pruning_ratio"}
    _FINAL_KEY = "pruning_ratio"

    def __init__(self, step=0, pruning_ratio=None, fraction=None, **kwargs):
        name = "ratio" if "ratio" in kwargs else "pruning_ratio"
        pruning_ratio = pop_renamed(
            kwargs, "ratio", "pruning_ratio", pruning_ratio, where="OneShot"
        )
        reject_unknown(kwargs, "OneShot")
        fraction = check_fraction(
            fraction,
            "fraction",
            include_one=True,
            allow_none=True,
            detail="(the share of the first `fit` trained before pruning) ",
        )
        if fraction is not None and step == 0:
            # The default `step`: not planned yet.
            step = None
        self.fraction = fraction
        # With `fraction`, `step` is only known once `fit` says how long it
        # trains (`plan`); until then it is None and nothing prunes.
        if step is None and fraction is None:
            raise ValueError(
                "`step` must be an integer >= 0 (or pass `fraction`). "
                "Received: step=None"
            )
        self.step = None if step is None else check_int(step, "step", 0)
        self._final_ratio = check_fraction(pruning_ratio, name, allow_none=True)

    def plan(self, start_step, total_steps):
        """Fixes the pruning step from the length of the coming `fit`.

        Called by `UpdatePruning` when training begins. Only a schedule
        made with `fraction` and not yet planned takes a step from it:
        `start_step + round(fraction * total_steps)`.

        Args:
            start_step: the `pruning_step` at which `fit` starts.
            total_steps: the number of steps `fit` will run (None when
                unknown).

        Raises:
            ValueError: if the schedule needs a step and `total_steps` is
                unknown.
        """
        if self.fraction is None or self.step is not None:
            return
        if total_steps is None:
            raise ValueError(
                f"OneShot(fraction={self.fraction}) needs to know how many "
                "steps `fit` runs, but the data has no known length. Pass "
                "`steps_per_epoch` to `fit`, or use `OneShot(step=N)`."
            )
        self.step = int(start_step) + int(round(self.fraction * total_steps))

    def __call__(self, step):
        ratio = self.final_ratio or 0.0
        if self.step is None or step < self.step:
            return False, 0.0
        return step == self.step, ratio

    def get_config(self):
        return {
            "step": self.step,
            "pruning_ratio": self.final_ratio,
            "fraction": self.fraction,
        }
