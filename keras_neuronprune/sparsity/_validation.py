"""Schedule evaluation shared by `sparsity` (private).

Argument checks live in `keras_neuronprune.utils.validation`.
"""

import numpy as np


def evaluate_schedule(schedule, step):
    """Calls any tfmot-style schedule and returns `(bool, float)`."""
    should_prune, sparsity = schedule(step)
    return bool(np.asarray(should_prune)), float(np.asarray(sparsity))
