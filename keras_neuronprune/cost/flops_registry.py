"""Registry of FLOP rules, looked up through the class hierarchy."""

import keras

from keras_neuronprune.cost.flops_rules import BUILTIN_RULES

_USER_RULES = {}
_VERSION = [0]


def register_flops_rule(layer_class, rule):
    """Registers the FLOP formula used by `count_cost` for a layer class.

    The rule applies to `layer_class` and its subclasses (unless a subclass
    has its own rule) and takes precedence over the built-in rules.

    Args:
        layer_class: a subclass of `keras.Operation` (usually of
            `keras.layers.Layer`).
        rule: a callable `rule(layer, input_shapes, output_shapes) -> int`.
            The shapes are lists of tuples of ints, one per input/output
            tensor of the call, with the batch dimension set to 1. Count a
            multiply-add as 2 FLOPs.

    Raises:
        TypeError: if `layer_class` is not a `keras.Operation` subclass or
            `rule` is not callable.

    Example:

    ```python
    class Scale(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    def scale_flops(layer, input_shapes, output_shapes):
        return math.prod(output_shapes[0])

    keras_neuronprune.cost.register_flops_rule(Scale, scale_flops)
    ```
    """
    if not (
        isinstance(layer_class, type)
        and issubclass(layer_class, keras.Operation)
    ):
        raise TypeError(
            "`layer_class` must be a subclass of keras.Operation. "
            f"Received: layer_class={layer_class!r}"
        )
    if not callable(rule):
        raise TypeError(f"`rule` must be callable. Received: rule={rule!r}")
    _USER_RULES[layer_class] = rule
    _VERSION[0] += 1


def unregister_flops_rule(layer_class):
    """Removes a rule added with `register_flops_rule` (no-op if absent)."""
    _USER_RULES.pop(layer_class, None)
    _VERSION[0] += 1


def has_user_rule(operation):
    """Whether a `register_flops_rule` rule covers `operation`'s class.

    A custom layer with its own FLOP rule is costed by that rule instead
    of being traced into its sublayers.
    """
    return any(cls in _USER_RULES for cls in type(operation).__mro__)


def registry_version():
    """A counter that changes whenever a rule is (un)registered."""
    return _VERSION[0]


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def get_flops_rule(operation):
    """Returns the FLOP rule for `operation`, or None if there is none.

    Walks `type(operation).__mro__`; at each class a user rule wins over
    the `flops` of the layer handler registered for that class
    (`keras_neuronprune.register_layer_handler`), which wins over a
    built-in rule, so the most specific class decides.
    """
    for cls in type(operation).__mro__:
        rule = _USER_RULES.get(cls)
        if rule is None:
            rule = _handler_rule(cls)
        if rule is None:
            rule = BUILTIN_RULES.get(cls)
        if rule is None:
            rule = BUILTIN_RULES.get(_qualified_name(cls))
        if rule is not None:
            return rule
        if cls is keras.layers.Layer or cls is keras.Operation:
            return None
    return None


def _handler_rule(cls):
    # One extension point: a LayerHandler that describes a layer's channels
    # may also give its FLOPs (`LayerHandler.flops`).
    from keras_neuronprune.graph.handlers import LayerHandler
    from keras_neuronprune.graph.handlers import registered_handler

    handler = registered_handler(cls)
    if handler is None or type(handler).flops is LayerHandler.flops:
        return None
    return handler.flops
