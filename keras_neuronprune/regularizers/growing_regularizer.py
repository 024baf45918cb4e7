"""`GrowingRegularizer`: GReg's per-filter L2 penalty with growing weights.

Attach one to the kernel of every producer layer pruned with GReg (criterion
`"greg"`'s `regularizer_for`). The per-filter coefficients `penalty` and the
pick state `selection` live in non-trainable `keras.Variable`s owned by the
regulariser; `GRegSchedule` (driven by the `greg` criterion's `update`)
grows them during training. Both vectors are written into the regulariser's
config, so a `.keras` file saved mid-schedule resumes it on load (a
weights-only checkpoint does not carry them; the criterion then re-picks).
"""

import keras
import numpy as np
from keras import ops

UNDECIDED = -1.0
KEEP = 0.0
PRUNE = 1.0


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class GrowingRegularizer(keras.regularizers.Regularizer):
    """`0.5 * sum_j penalty_j * ||W_j||^2` over the filters `W_j` of a kernel.

    Filter `j` is the slice `j` of the kernel along `axis` (the output
    channel axis: -1 for Conv and Dense kernels). Its gradient
    `penalty_j * W_j` is what the official GReg code adds to the weight
    gradients. The coefficients start at 0 (no effect) and are raised by
    `GRegSchedule` for the filters picked for removal.

    Args:
        penalty: per-filter coefficients (a list or array); its length is
            the number of filters. An int `n` means `n` zeros.
        axis: the kernel's filter (output channel) axis.
        selection: per-filter pick state: -1 undecided, 0 kept, 1 picked
            for removal. None means undecided everywhere.

    Example:

    ```python
    reg = keras_neuronprune.regularizers.GrowingRegularizer(16)
    conv = keras.layers.Conv2D(16, 3, kernel_regularizer=reg)
    reg.set_penalty(np.where(picked, 1e-2, 0.0))
    ```

    Reference:
        Wang et al., "Neural Pruning via Growing Regularization", ICLR 2021,
        arXiv:2012.09243.
    """

    def __init__(self, penalty, axis=-1, selection=None):
        if isinstance(penalty, (int, np.integer)) and not isinstance(
            penalty, bool
        ):
            if penalty < 1:
                raise ValueError(
                    "`penalty` as an int is the number of filters and must "
                    f"be >= 1. Received: penalty={penalty!r}"
                )
            penalty = np.zeros(int(penalty), "float32")
        values = np.asarray(penalty, "float32").reshape(-1)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(
                "`penalty` must be a non-empty vector of finite numbers. "
                f"Received: penalty={penalty!r}"
            )
        if selection is None:
            selection = np.full(values.shape, UNDECIDED, "float32")
        selection = np.asarray(selection, "float32").reshape(-1)
        if selection.shape != values.shape or not np.all(
            np.isin(selection, (UNDECIDED, KEEP, PRUNE))
        ):
            raise ValueError(
                "`selection` must have one entry in {-1, 0, 1} per filter "
                f"({values.size}). Received: selection={selection!r}"
            )
        self.axis = int(axis)
        self.penalty = keras.Variable(
            values, trainable=False, dtype="float32", name="greg_penalty"
        )
        self.selection = keras.Variable(
            selection, trainable=False, dtype="float32", name="greg_selection"
        )

    @property
    def num_filters(self):
        return int(self.penalty.shape[0])

    def __call__(self, x):
        x = ops.cast(x, "float32")
        rank = len(x.shape)
        axis = self.axis % rank
        others = [a for a in range(rank) if a != axis]
        norms = ops.sum(ops.square(x), axis=others) if others else x * x
        return 0.5 * ops.sum(self.penalty * norms)

    def set_penalty(self, values):
        """Assigns the per-filter coefficients."""
        self._assign_per_filter(self.penalty, values)

    def set_selection(self, values):
        """Assigns the pick state (-1 undecided, 0 kept, 1 picked)."""
        self._assign_per_filter(self.selection, values)

    def _assign_per_filter(self, variable, values):
        values = np.asarray(values, "float32").reshape(-1)
        if values.shape != (self.num_filters,):
            raise ValueError(
                f"`values` must have shape ({self.num_filters},). "
                f"Received: values with shape {values.shape}"
            )
        variable.assign(values)

    def get_config(self):
        return {
            "penalty": [float(v) for v in self.penalty.numpy()],
            "axis": self.axis,
            "selection": [float(v) for v in self.selection.numpy()],
        }
