"""`WeightMaskedMixin`: the weight-sparsity spelling of the masked layers.

The masked layers (`keras_neuronprune.layers.MaskedDense`, ...) carry both
channel masks and an optional kernel mask (`MaskedLayerMixin`). The
`WeightMasked*` classes are those layers with the kernel mask always on and
no channel masks: the layers `prune_weights` swaps in, whose variables and
config are what earlier releases saved, so their `.keras` files still load.
"""

from collections.abc import Mapping

from keras_neuronprune.layers._kernel_mask import KERNEL_MASK  # noqa: F401
from keras_neuronprune.layers._kernel_mask import MASK_FROZEN  # noqa: F401
from keras_neuronprune.layers._kernel_mask import MASK_PENALTY  # noqa: F401
from keras_neuronprune.layers._kernel_mask import MASK_SCORE  # noqa: F401
from keras_neuronprune.layers._kernel_mask import make_mask_ste  # noqa: F401
from keras_neuronprune.layers._masking import MaskedLayerMixin
from keras_neuronprune.layers._registry import masked_layer_specs

# masked class -> its WeightMasked* spelling (filled by __init_subclass__).
_WEIGHT_MASKED = {}


class WeightMaskedMixin(MaskedLayerMixin):
    """A masked layer with only an element mask on its kernel.

    A subclass lists the mixin first and a masked layer second (e.g.
    `class WeightMaskedDense(WeightMaskedMixin, MaskedDense)`). It takes
    every argument of the Keras layer plus the kernel-mask options of
    `MaskedLayerMixin` (`learned_mask`, `mask_init`, `mask_penalty`,
    `normalize_mask_gradients`), and computes exactly what the Keras layer
    computes with the kernel `kernel * mask`.
    `keras_neuronprune.sparsity.prune_weights` creates these layers and its
    controller updates the masks;
    `keras_neuronprune.sparsity.strip_weight_pruning` turns them back into
    plain Keras layers with exact zeros.

    Example:
    ```python
    layer = keras_neuronprune.sparsity.layers.WeightMaskedDense(units=64)
    ```

    Reference:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", arXiv:1506.02626 (kernel x mask formulation).
    """

    use_channel_masks = False
    kernel_mask_default = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for base in cls.__bases__:
            if base is not WeightMaskedMixin:
                _WEIGHT_MASKED.setdefault(base, cls)


class _WeightMaskedClasses(Mapping):
    """`{keras_layer_class: WeightMasked* class}`, read from the registry."""

    def _table(self):
        return {
            layer_class: _WEIGHT_MASKED[spec.masked_class]
            for layer_class, spec in masked_layer_specs().items()
            if spec.masked_class in _WEIGHT_MASKED
        }

    def __getitem__(self, layer_class):
        return self._table()[layer_class]

    def __iter__(self):
        return iter(self._table())

    def __len__(self):
        return len(self._table())

    def __repr__(self):
        return repr(self._table())


# The layers weight sparsity swaps in, keyed by the exact Keras class.
WEIGHT_MASKED_CLASSES = _WeightMaskedClasses()
