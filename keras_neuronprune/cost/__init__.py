"""Parameter and FLOP counting (`count_cost`)."""

from keras_neuronprune.cost.count_cost import count_cost
from keras_neuronprune.cost.flops_registry import register_flops_rule
from keras_neuronprune.cost.flops_registry import unregister_flops_rule
from keras_neuronprune.cost.layer_cost import LayerCost
from keras_neuronprune.cost.model_cost import ModelCost
from keras_neuronprune.graph.flops_formulas import ACTIVATION_FLOPS  # noqa: F401

__all__ = [
    "LayerCost",
    "ModelCost",
    "count_cost",
    "register_flops_rule",
    "unregister_flops_rule",
]
