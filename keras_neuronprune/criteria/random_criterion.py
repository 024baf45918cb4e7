"""`RandomCriterion` (alias `"random"`): seeded random scores, a baseline.

"Rethinking the Value of Network Pruning" shows random structured pruning
followed by training is a strong baseline; compare every criterion with it.
"""

import zlib

import keras
import numpy as np

from keras_neuronprune.criteria.base_criterion import Criterion


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class RandomCriterion(Criterion):
    """Uniform random scores in [0, 1), reproducible.

    The scores of a group are drawn from a generator seeded with
    `(seed, crc32(group name), context.step)`: the same seed, group and step
    always give the same scores (independent of the other groups and of
    call order); a later pruning step draws new ones.

    Args:
        seed: int seed.
        reduction: unused (kept for the common signature).

    Example:

    ```python
    baseline = keras_neuronprune.criteria.RandomCriterion(seed=3)
    ```

    Reference:
        Liu et al., "Rethinking the Value of Network Pruning", ICLR 2019,
        arXiv:1810.05270.
    """

    alias = "random"

    def __init__(self, seed=0, reduction="sum"):
        super().__init__(reduction)
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(
                f"`seed` must be a non-negative int. Received: seed={seed!r}"
            )
        self.seed = int(seed)

    def score(self, context):
        scores = {}
        for group in self.prunable_groups(context):
            key = zlib.crc32(group.name.encode("utf-8"))
            rng = np.random.default_rng([self.seed, key, int(context.step)])
            scores[group.name] = rng.random(group.size)
        return scores

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
