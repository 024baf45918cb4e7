"""Low-rank training and factorisation (LRPET)."""

from keras_neuronprune.lowrank.factorize import factorize_low_rank
from keras_neuronprune.lowrank.low_rank_projection import LowRankProjection
from keras_neuronprune.lowrank.low_rank_report import LowRankReport
from keras_neuronprune.lowrank.projection import energy_transfer_projection

__all__ = [
    "LowRankProjection",
    "LowRankReport",
    "energy_transfer_projection",
    "factorize_low_rank",
]
