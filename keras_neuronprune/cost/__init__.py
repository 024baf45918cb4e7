"""Parameter and FLOP counting (`count_cost`)."""

from keras_neuronprune.cost.count_cost import count_cost
from keras_neuronprune.cost.flops_registry import register_flops_rule
from keras_neuronprune.cost.flops_registry import unregister_flops_rule
from keras_neuronprune.cost.flops_rules import ACTIVATION_FLOPS
from keras_neuronprune.cost.layer_cost import LayerCost
from keras_neuronprune.cost.model_cost import ModelCost

__all__ = [
    "ACTIVATION_FLOPS",
    "LayerCost",
    "ModelCost",
    "count_cost",
    "register_flops_rule",
    "unregister_flops_rule",
]
