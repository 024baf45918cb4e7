"""Registry of FLOP rules, looked up through the class hierarchy."""

import keras

from keras_neuronprune.cost.flops_rules import BUILTIN_RULES

_USER_RULES = {}


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


def unregister_flops_rule(layer_class):
    """Removes a rule added with `register_flops_rule` (no-op if absent)."""
    _USER_RULES.pop(layer_class, None)


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def get_flops_rule(operation):
    """Returns the FLOP rule for `operation`, or None if there is none.

    Walks `type(operation).__mro__`; at each class a user rule wins over a
    built-in one, so the most specific class decides.
    """
    for cls in type(operation).__mro__:
        rule = _USER_RULES.get(cls)
        if rule is None:
            rule = BUILTIN_RULES.get(cls)
        if rule is None:
            rule = BUILTIN_RULES.get(_qualified_name(cls))
        if rule is not None:
            return rule
        if cls is keras.layers.Layer or cls is keras.Operation:
            return None
    return None
