"""FLOPs come from the layer handlers: same counts as the old rule table."""

import math
import pathlib

import keras
import pytest

import keras_neuronprune
from keras_neuronprune.cost import count_cost
from keras_neuronprune.cost import register_flops_rule
from keras_neuronprune.cost import unregister_flops_rule
from keras_neuronprune.graph import ChannelwiseHandler
from keras_neuronprune.graph import LayerHandler

# (FLOPs, params) at 96x96 from the rule table before the handlers carried
# the rules (keras.applications, weights=None).
_BEFORE = {
    "MobileNetV3Small": (25294152, 2554968),
    "EfficientNetB0": (150602788, 5330571),
    "ConvNeXtTiny": (1651981680, 28589128),
}


@pytest.mark.parametrize("name", sorted(_BEFORE))
def test_applications_counts_unchanged(name):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(96, 96, 3)
    )
    cost = count_cost(model)
    assert (cost.flops, cost.params) == _BEFORE[name]
    assert cost.uncounted == ()


class _Scale(keras.layers.Layer):
    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), name="w")

    def call(self, x):
        return x * self.w


def _model():
    x = keras.Input((3, 4))
    return keras.Model(x, _Scale(name="scale")(x))


def test_one_handler_gives_channels_and_flops():
    handler = ChannelwiseHandler(per_channel_weights=("w",)).with_flops(
        lambda layer, ins, outs: 5 * math.prod(outs[0])
    )
    keras_neuronprune.register_layer_handler(_Scale, handler)
    cost = count_cost(_model())
    assert [row.name for row in cost.layers][-1] == "scale"
    assert cost.flops == 5 * 12
    groups = keras_neuronprune.channel_groups(_model())
    assert any("scale" in g.layers for g in groups)


def test_flops_only_handler_and_deprecated_front():
    class Opaque(keras.layers.Layer):
        def call(self, x):
            return x

    x = keras.Input((2,))
    model = keras.Model(x, Opaque(name="o")(x))
    keras_neuronprune.register_layer_handler(
        Opaque, LayerHandler().with_flops(lambda *a: 3)
    )
    assert count_cost(model).flops == 3
    with pytest.deprecated_call():
        register_flops_rule(Opaque, lambda *a: 9)
    assert count_cost(model).flops == 9
    with pytest.deprecated_call():
        unregister_flops_rule(Opaque)
    assert count_cost(model).flops == 3
    with pytest.raises(TypeError, match="rule"):
        LayerHandler().with_flops(3)


def test_graph_does_not_import_cost():
    graph_dir = pathlib.Path(keras_neuronprune.graph.__file__).parent
    for path in graph_dir.glob("*.py"):
        assert "keras_neuronprune.cost" not in path.read_text(), path.name
