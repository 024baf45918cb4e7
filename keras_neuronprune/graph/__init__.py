"""Channel dependency graph: which channels must be pruned together."""

from keras_neuronprune.graph import attention_handlers  # noqa: F401
from keras_neuronprune.graph import builtin_handlers  # noqa: F401 (registers)
from keras_neuronprune.graph import ops_handlers  # noqa: F401 (registers)
from keras_neuronprune.graph.builtin_handlers import AxisParamHandler
from keras_neuronprune.graph.builtin_handlers import ChannelwiseHandler
from keras_neuronprune.graph.builtin_handlers import MergeHandler
from keras_neuronprune.graph.channel_group import ChannelGroup
from keras_neuronprune.graph.channel_group import GroupMember
from keras_neuronprune.graph.dependency_graph import DependencyGraph
from keras_neuronprune.graph.handlers import LayerHandler
from keras_neuronprune.graph.handlers import register_layer_handler


def channel_groups(model, allow_inexact=False):
    """Finds the groups of channels that must be pruned together.

    Args:
        model: a functional or Sequential Keras 3 model (nested models and
            shared layers allowed).
        allow_inexact: when True, groups normalised across channels
            (LayerNormalization, GroupNormalization, Softmax over channels)
            are prunable (and still marked `exact=False`).

    Returns:
        A list of `ChannelGroup` (`name`, `size`, `prunable`, `exact`,
        `reason`, `layers`, `members`, `partitions`), in graph order.

    Raises:
        ValueError: for a subclassed model, which has no graph to read.

    Example:

    ```python
    model = keras.applications.ResNet50(weights=None)
    for group in keras_neuronprune.channel_groups(model):
        print(group)
    ```
    """
    return DependencyGraph(model, allow_inexact=allow_inexact).groups


__all__ = [
    "AxisParamHandler",
    "ChannelGroup",
    "ChannelwiseHandler",
    "DependencyGraph",
    "GroupMember",
    "LayerHandler",
    "MergeHandler",
    "channel_groups",
    "register_layer_handler",
]
