"""Argument checks of the regularisers (private).

Kept as names for the modules that import them; the checks themselves are
`keras_neuronprune.utils.validation`'s, `(value, name)` order.
"""

from keras_neuronprune.utils.validation import check_finite as finite_float
from keras_neuronprune.utils.validation import (
    check_non_negative as non_negative_float,
)

__all__ = ["finite_float", "non_negative_float"]
