"""The weight-pruning algorithms behind `prune_weights(method=...)`."""

from keras_neuronprune.sparsity.methods.base_method import BaseMethod
from keras_neuronprune.sparsity.methods.fixed_mask_method import FixedMaskMethod
from keras_neuronprune.sparsity.methods.iss_p_method import IssPMethod
from keras_neuronprune.sparsity.methods.magnitude_method import MagnitudeMethod
from keras_neuronprune.sparsity.methods.nnrelief_method import NNReliefMethod
from keras_neuronprune.sparsity.methods.rigl_method import RigLMethod
from keras_neuronprune.sparsity.methods.scl_method import SclMethod
from keras_neuronprune.sparsity.methods.snip_method import SnipMethod

METHODS = {
    cls.name: cls
    for cls in (
        MagnitudeMethod,
        SnipMethod,
        RigLMethod,
        SclMethod,
        IssPMethod,
        NNReliefMethod,
        FixedMaskMethod,
    )
}

__all__ = [
    "BaseMethod",
    "FixedMaskMethod",
    "IssPMethod",
    "METHODS",
    "MagnitudeMethod",
    "NNReliefMethod",
    "RigLMethod",
    "SclMethod",
    "SnipMethod",
]
