"""Layer handlers: how channels flow through a layer and how it is thinned.

Every layer type the graph understands has a `LayerHandler`. Lookup walks
the class's MRO, so a subclass of `Conv2D` uses the Conv2D handler, but a
subclass that adds weights the handler does not know is treated as a barrier
(fail closed). A layer with no handler is a barrier: the channels that flow
into or out of it are never pruned, and the group says which layer blocked
it. Users describe their own layers with `register_layer_handler`.
"""

import numpy as np

_REGISTRY = {}
# Bumped at every registration: graphs cached with custom layers traced
# (see `_keras_graph.inlined_graph`) are rebuilt after a registration.
_VERSION = [0]


class LayerHandler:
    """Describes one layer type to the channel graph and the rewriter.

    Subclasses override:
    - `propagate(layer, site, graph)`: declare the channels of each output
      (`graph.set_channels(tensor, ids)`), couplings (`graph.couple`),
      members (`graph.add_member`) and constraints.
    - `thin(layer, config, weights, in_keep, out_keep, info)`: return the
      new config and the sliced weights (a dict name -> array) given boolean
      keep masks of the first call site's inputs and outputs (None where a
      tensor has no channel axis); `info.in_shapes` / `info.out_shapes` hold
      that call's tensor shapes.
    - `zero_inputs(layer, weights, in_keep)`: for layers that mix channels,
      return the weights with the input weights of removed channels set to
      zero (the reference model used to prove the rewrite exact).

    - `rebuild_operation(op, in_keep, out_keep, info)`: for raw ops (not
      layers), the op to call in the thinned model (default: `op` itself,
      for ops whose arguments do not depend on the channel count).
    - `flops(layer, input_shapes, output_shapes)`: the FLOPs of one call
      (batch 1), used by `count_cost` before its own rules; the default
      returns `NotImplemented` (no opinion). So one handler can describe a
      layer's channels, its rewrite and its cost.

    `weight_names` lists the variable names the handler knows; a layer with
    other variables is a barrier.
    """

    weight_names = ()

    def known(self, layer):
        names = {_short(w) for w in getattr(layer, "weights", ())}
        return names.issubset(self.weight_names)

    def propagate(self, layer, site, graph):
        raise NotImplementedError

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        return config, weights

    def zero_inputs(self, layer, weights, in_keep):
        return weights

    def rebuild_operation(self, op, in_keep, out_keep, info):
        return op

    def flops(self, layer, input_shapes, output_shapes):
        return NotImplemented


def _short(variable):
    return variable.name.split("/")[-1]


def register_layer_handler(layer_class, handler):
    """Registers how channels flow through a (custom) layer class.

    Args:
        layer_class: a `keras.layers.Layer` subclass (or `keras.Operation`).
        handler: a `LayerHandler` instance. For layers that act on each
            channel independently, `keras_neuronprune.graph.ChannelwiseHandler(
            per_channel_weights=(...), channel_config_keys=(...))` is enough.

    Example:

    ```python
    class Scale(keras.layers.Layer):  # y = x * w, one w per channel
        ...
    keras_neuronprune.register_layer_handler(
        Scale, keras_neuronprune.graph.ChannelwiseHandler(
            per_channel_weights=("w",), channel_config_keys=("units",)))
    ```
    """
    if not isinstance(layer_class, type):
        raise TypeError(
            "`layer_class` must be a class. "
            f"Received: layer_class={layer_class!r}"
        )
    if not isinstance(handler, LayerHandler):
        raise TypeError(
            "`handler` must be a keras_neuronprune.graph.LayerHandler. "
            f"Received: handler={handler!r}"
        )
    _REGISTRY[layer_class] = handler
    _VERSION[0] += 1


def registry_version():
    """A counter that changes whenever a handler is registered."""
    return _VERSION[0]


def registered_handler(layer_class):
    """The handler registered for exactly `layer_class` (or None)."""
    return _REGISTRY.get(layer_class)


def get_handler(operation):
    """Returns the handler for an operation, or None (a barrier)."""
    for cls in type(operation).__mro__:
        handler = _REGISTRY.get(cls)
        if handler is not None:
            return handler
    return None


def take(array, keep, axis):
    """`np.take` with a boolean keep mask (None keeps everything)."""
    if keep is None:
        return array
    return np.compress(keep, array, axis=axis)


def zero(array, keep, axis):
    """Zeros the entries of `array` along `axis` where `keep` is False."""
    if keep is None or keep.all():
        return array
    array = np.array(array, copy=True)
    index = [slice(None)] * array.ndim
    index[axis] = ~keep
    array[tuple(index)] = 0
    return array
