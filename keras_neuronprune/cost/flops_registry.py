"""Deprecated FLOP-rule registration, kept as a front of the layer handlers.

A layer's FLOPs come from its layer handler
(`keras_neuronprune.register_layer_handler`, `LayerHandler.with_flops`);
`register_flops_rule` registers a handler that gives only FLOPs.
"""

import warnings

import keras

from keras_neuronprune.graph.handlers import LayerHandler
from keras_neuronprune.graph.handlers import register_layer_handler
from keras_neuronprune.graph.handlers import registered_flops_handler
from keras_neuronprune.graph.handlers import set_flops_handler


class _FlopsRuleHandler(LayerHandler):
    """A handler made by `register_flops_rule`: FLOPs only.

    Remembers the FLOPs handler it replaced, which `unregister_flops_rule`
    puts back.
    """

    def __init__(self, rule, replaced, replaced_user):
        self.flops_rule = rule
        self.replaced = replaced
        self.replaced_user = replaced_user


def _warn(name):
    warnings.warn(
        f"`keras_neuronprune.cost.{name}` is deprecated: give the FLOPs "
        "with the layer's handler, keras_neuronprune.register_layer_handler("
        "layer_class, handler.with_flops(rule)) (a bare "
        "keras_neuronprune.graph.LayerHandler() for FLOPs only).",
        DeprecationWarning,
        stacklevel=3,
    )


def register_flops_rule(layer_class, rule):
    """Deprecated: registers the FLOP formula of a layer class.

    Use `keras_neuronprune.register_layer_handler(layer_class,
    LayerHandler().with_flops(rule))` (or give the rule to the handler that
    describes the layer's channels). The rule applies to `layer_class` and
    its subclasses (unless a subclass has its own) and replaces the
    class's built-in FLOPs until `unregister_flops_rule`.

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
    def scale_flops(layer, input_shapes, output_shapes):
        return math.prod(output_shapes[0])

    # Deprecated spelling of
    # register_layer_handler(Scale, LayerHandler().with_flops(scale_flops))
    keras_neuronprune.cost.register_flops_rule(Scale, scale_flops)
    ```
    """
    _warn("register_flops_rule")
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
    current, user = registered_flops_handler(layer_class)
    if isinstance(current, _FlopsRuleHandler):
        current, user = current.replaced, current.replaced_user
    register_layer_handler(layer_class, _FlopsRuleHandler(rule, current, user))


def unregister_flops_rule(layer_class):
    """Deprecated: removes a rule added with `register_flops_rule`.

    A no-op if the class has none; the class's FLOPs are then those it had
    before the rule.
    """
    _warn("unregister_flops_rule")
    current, _ = registered_flops_handler(layer_class)
    if isinstance(current, _FlopsRuleHandler):
        set_flops_handler(layer_class, current.replaced, current.replaced_user)
