"""`Iterative`: prune a fixed number of channels every few steps."""

import math

import keras

from keras_neuronprune.schedules.base_pruning_schedule import PruningSchedule
from keras_neuronprune.utils.renamed_arguments import pop_renamed
from keras_neuronprune.utils.renamed_arguments import reject_unknown
from keras_neuronprune.utils.validation import check_fraction
from keras_neuronprune.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class Iterative(PruningSchedule):
    """Removes `channels_per_step` channels every `frequency` steps.

    The schedule of Molchanov et al. (2019): score, prune a few channels
    (100 every 30 mini-batches on ImageNet), keep training, repeat until the
    final ratio is reached. Pruning happens at steps `begin_step`,
    `begin_step + frequency`, ... The channel count is turned into a ratio of
    the model's prunable channels when `prune_structured` binds the schedule
    (`num_channels`); the last update lands exactly on the final ratio.

    Args:
        channels_per_step: channels removed at every pruning step.
        frequency: training steps between two pruning steps.
        begin_step: first pruning step.
        final_pruning_ratio: fraction of channels removed at the end; None
            takes the target given to `prune_structured`.
        num_channels: number of prunable channels (None: set by
            `prune_structured` when it binds the schedule).
        **kwargs: `final_ratio`, the deprecated spelling of
            `final_pruning_ratio` (accepted with a `DeprecationWarning`).

    Example:
    ```python
    schedule = keras_neuronprune.schedules.Iterative(
        channels_per_step=16, frequency=30
    )
    ```

    Reference:
        Molchanov et al., "Importance Estimation for Neural Network
        Pruning", CVPR 2019 (arXiv:1906.10771).
    """

    _RENAMED = {"final_ratio": "final_pruning_ratio"}
    _FINAL_KEY = "final_pruning_ratio"

    def __init__(
        self,
        channels_per_step=100,
        frequency=30,
        begin_step=0,
        final_pruning_ratio=None,
        num_channels=None,
        **kwargs,
    ):
        name = "final_pruning_ratio"
        if "final_ratio" in kwargs:
            name = "final_ratio"
        final_pruning_ratio = pop_renamed(
            kwargs,
            "final_ratio",
            "final_pruning_ratio",
            final_pruning_ratio,
            where="Iterative",
        )
        reject_unknown(kwargs, "Iterative")
        self.channels_per_step = check_int(
            channels_per_step, "channels_per_step", 1
        )
        self.frequency = check_int(frequency, "frequency", 1)
        self.begin_step = check_int(begin_step, "begin_step", 0)
        self._final_ratio = check_fraction(
            final_pruning_ratio, name, allow_none=True
        )
        self.num_channels = (
            None
            if num_channels is None
            else check_int(num_channels, "num_channels", 1)
        )

    def bind(self, final_ratio, num_channels=None):
        bound = super().bind(final_ratio, num_channels)
        if num_channels is not None:
            bound.num_channels = check_int(num_channels, "num_channels", 1)
        return bound

    @property
    def num_updates(self):
        """Number of pruning steps needed to reach the final ratio."""
        self._check_bound()
        total = self.final_ratio * self.num_channels
        return max(1, math.ceil(total / self.channels_per_step - 1e-9))

    def _check_bound(self):
        if self.final_ratio is None or self.num_channels is None:
            raise ValueError(
                "`Iterative` needs `final_pruning_ratio` and `num_channels`; "
                "pass it to `prune_structured` (which binds them) or set "
                "them. "
                f"Received: final_pruning_ratio={self.final_ratio!r}, "
                f"num_channels={self.num_channels!r}"
            )

    def __call__(self, step):
        self._check_bound()
        if step < self.begin_step:
            return False, 0.0
        index = (step - self.begin_step) // self.frequency
        if index >= self.num_updates:
            return False, self.final_ratio
        ratio = min(
            self.final_ratio,
            (index + 1) * self.channels_per_step / self.num_channels,
        )
        if index == self.num_updates - 1:
            ratio = self.final_ratio
        return (step - self.begin_step) % self.frequency == 0, ratio

    def get_config(self):
        return {
            "channels_per_step": self.channels_per_step,
            "frequency": self.frequency,
            "begin_step": self.begin_step,
            "final_pruning_ratio": self.final_ratio,
            "num_channels": self.num_channels,
        }
