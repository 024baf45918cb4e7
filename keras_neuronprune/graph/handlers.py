"""Layer handlers: how channels flow through a layer and how it is thinned.

Every layer type the graph understands has a `LayerHandler`. Lookup walks
the class's MRO, so a subclass of `Conv2D` uses the Conv2D handler, but a
subclass that adds weights the handler does not know is treated as a barrier
(fail closed). A layer with no handler is a barrier: the channels that flow
into or out of it are never pruned, and the group says which layer blocked
it. Users describe their own layers with `register_layer_handler`.

The handler is also the one place that gives a layer's FLOPs
(`LayerHandler.flops`, usually through `flops_rule`): `count_cost` asks
`layer_flops`, which walks the MRO the same way, so a subclass of `Conv2D`
is costed as a Conv2D unless a handler registered for the subclass gives
FLOPs of its own.
"""

import copy

import keras
import numpy as np

# class -> handler that describes the channels (`propagate` overridden).
_REGISTRY = {}
# class -> handler that gives the FLOPs (`flops_rule` set or `flops`
# overridden). A handler may do both; it is then in both tables.
_FLOPS = {}
# Classes whose FLOPs a user registered (not a built-in rule): a custom
# layer covered by one is costed as a whole rather than traced.
_USER_FLOPS = set()
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
      (batch 1, a multiply-add counts 2), as used by `count_cost`; the
      shapes are lists of int tuples, one per input / output tensor. The
      default calls `flops_rule` (a callable with the same arguments, set
      with `with_flops`) or, when there is none, returns `NotImplemented`:
      no opinion, the FLOPs of the base class's handler apply. So one
      handler describes a layer's channels, its rewrite and its cost.

    A handler that does not override `propagate` describes no channels (for
    the graph the layer keeps the handler of its base class, or is a
    barrier); one with no FLOPs leaves the class's FLOP count as it was.

    `weight_names` lists the variable names the handler knows; a layer with
    other variables is a barrier.

    `masked_class(layer_class)` and `kernel_axes(layer_class)` report the
    masked class that replaces exactly `layer_class` during pruning and
    where its weights' channels are, from the one masked-layer registry
    (`keras_neuronprune.layers.masked_layer_spec`); `with_masked_class`
    gives them for a custom layer.
    """

    weight_names = ()
    flops_rule = None
    # (masked_class, kernel_axes) given with `with_masked_class`.
    masked = None

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
        if self.flops_rule is None:
            return NotImplemented
        return self.flops_rule(layer, input_shapes, output_shapes)

    def with_flops(self, rule):
        """A copy of this handler whose FLOPs are `rule`.

        Args:
            rule: a callable `rule(layer, input_shapes, output_shapes) ->
                int` (see `flops`).

        Returns:
            The new handler (this one is left unchanged).

        Raises:
            TypeError: if `rule` is not callable.
        """
        if not callable(rule):
            raise TypeError(f"`rule` must be callable. Received: rule={rule!r}")
        handler = copy.copy(self)
        handler.flops_rule = rule
        return handler

    def masked_class(self, layer_class):
        """The masked class that replaces exactly `layer_class`, or None."""
        spec = self._masked_spec(layer_class)
        return None if spec is None else spec.masked_class

    def kernel_axes(self, layer_class):
        """`{weight_name: KernelAxes}` of `layer_class`'s weights, or None."""
        spec = self._masked_spec(layer_class)
        return None if spec is None else spec.kernel_axes

    def with_masked_class(self, masked_class, kernel_axes=None):
        """A copy of this handler that gives `masked_class` for its layer.

        `register_layer_handler(layer_class, handler)` then enters it in the
        masked-layer registry (structured pruning swaps it in).

        Args:
            masked_class: a subclass of the layer class and of
                `keras_neuronprune.layers.MaskedLayerMixin`.
            kernel_axes: `{weight_name: KernelAxes}`; default
                `masked_class.kernel_axes`.

        Returns:
            The new handler (this one is left unchanged).
        """
        handler = copy.copy(self)
        handler.masked = (masked_class, kernel_axes)
        return handler

    def _masked_spec(self, layer_class):
        from keras_neuronprune.layers import _registry

        if self.masked is None:
            return _registry.masked_layer_spec(layer_class)
        masked_class, axes = self.masked
        axes = masked_class.kernel_axes if axes is None else axes
        return _registry.MaskedLayerSpec(masked_class, dict(axes))


def describes_channels(handler):
    """Whether `handler` says how channels flow (overrides `propagate`)."""
    return type(handler).propagate is not LayerHandler.propagate


def gives_flops(handler):
    """Whether `handler` gives FLOPs (`flops_rule` or its own `flops`)."""
    return (
        handler.flops_rule is not None
        or type(handler).flops is not LayerHandler.flops
    )


def _short(variable):
    return variable.name.split("/")[-1]


def register_layer_handler(layer_class, handler):
    """Registers how channels flow through a layer class, and its FLOPs.

    The one hook a custom layer needs: the handler describes the layer's
    channels to the graph and the rewriter (`propagate`, `thin`...) and
    gives its FLOPs to `count_cost` (`flops_rule`, or its own `flops`). A
    handler with no FLOPs leaves the class's FLOP count as it was (e.g. the
    built-in one when a stock layer gets a new handler); a handler that
    only gives FLOPs leaves the channel description as it was.

    Args:
        layer_class: a `keras.layers.Layer` subclass (or `keras.Operation`).
        handler: a `LayerHandler` instance. For layers that act on each
            channel independently, `keras_neuronprune.graph.ChannelwiseHandler(
            per_channel_weights=(...), channel_config_keys=(...))` is enough;
            `.with_flops(rule)` adds the FLOPs,
            `rule(layer, input_shapes, output_shapes) -> int` (batch 1).

    Raises:
        TypeError: if `layer_class` is not a class or `handler` is not a
            `LayerHandler`.

    Example:

    ```python
    class Scale(keras.layers.Layer):  # y = x * w, one w per channel
        ...
    keras_neuronprune.register_layer_handler(
        Scale,
        keras_neuronprune.graph.ChannelwiseHandler(
            per_channel_weights=("w",), channel_config_keys=("units",)
        ).with_flops(lambda layer, ins, outs: math.prod(outs[0])),
    )
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
    _register(layer_class, handler, user=True)


def register_builtin_handler(layer_class, handler):
    """`register_layer_handler` for the library's own handlers (private).

    Built-in FLOP rules do not stop a custom subclass from being traced.
    """
    _register(layer_class, handler, user=False)


def _register(layer_class, handler, user):
    if handler.masked is not None:
        from keras_neuronprune.layers import register_masked_layer

        register_masked_layer(layer_class, *handler.masked)
    if describes_channels(handler):
        _REGISTRY[layer_class] = handler
    if gives_flops(handler):
        set_flops_handler(layer_class, handler, user)
    _VERSION[0] += 1


def set_flops_handler(layer_class, handler, user):
    """Sets (or, with `handler=None`, removes) the FLOPs of exactly
    `layer_class` (private: for the deprecated `register_flops_rule`)."""
    if handler is None:
        _FLOPS.pop(layer_class, None)
    else:
        _FLOPS[layer_class] = handler
    if user and handler is not None:
        _USER_FLOPS.add(layer_class)
    else:
        _USER_FLOPS.discard(layer_class)
    _VERSION[0] += 1


def registry_version():
    """A counter that changes whenever a handler is registered."""
    return _VERSION[0]


def registered_handler(layer_class):
    """The channel handler registered for exactly `layer_class` (or None)."""
    return _REGISTRY.get(layer_class)


def registered_flops_handler(layer_class):
    """The FLOPs handler registered for exactly `layer_class` (or None),
    and whether a user registered it."""
    return _FLOPS.get(layer_class), layer_class in _USER_FLOPS


def get_handler(operation):
    """Returns the handler for an operation, or None (a barrier)."""
    for cls in type(operation).__mro__:
        handler = _REGISTRY.get(cls)
        if handler is not None:
            return handler
    return None


def _flops_classes(operation):
    # A rule for `Layer` (or `Operation`) is the last one a layer (or op)
    # can inherit: the classes above them are Keras' plumbing.
    for cls in type(operation).__mro__:
        yield cls
        if cls is keras.layers.Layer or cls is keras.Operation:
            return


def flops_handler(operation):
    """The handler that gives `operation`'s FLOPs, or None."""
    for cls in _flops_classes(operation):
        handler = _FLOPS.get(cls)
        if handler is not None:
            return handler
    return None


def layer_flops(operation, input_shapes, output_shapes):
    """FLOPs of one call of `operation`, from its handler.

    Args:
        operation: the layer or op called.
        input_shapes: the call's input shapes (int tuples, batch 1).
        output_shapes: its output shapes.

    Returns:
        The handler's count (an int, or None where the handler cannot count
        this call), or `NotImplemented` if no handler gives FLOPs.
    """
    for cls in _flops_classes(operation):
        handler = _FLOPS.get(cls)
        if handler is None:
            continue
        flops = handler.flops(operation, input_shapes, output_shapes)
        if flops is not NotImplemented:
            return flops
    return NotImplemented


def costed_by_user(operation):
    """Whether FLOPs registered by a user cover `operation`'s class.

    A custom layer with its own FLOPs is costed as a whole instead of being
    traced into its sublayers.
    """
    return any(cls in _USER_FLOPS for cls in type(operation).__mro__)


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
