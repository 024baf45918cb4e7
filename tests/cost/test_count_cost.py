"""Model-level behaviour of count_cost: graphs, nesting, sharing, errors."""

import json
import math

import keras
import pytest

import keras_neuronprune
from keras_neuronprune.cost import LayerCost
from keras_neuronprune.cost import ModelCost
from keras_neuronprune.cost import count_cost
from keras_neuronprune.cost import register_flops_rule
from keras_neuronprune.cost import unregister_flops_rule

L = keras.layers

CONV_3x3_4_8_5x5 = 2 * 9 * 4 * 8 * 25 + 8 * 25


def _small_cnn(name="small"):
    x = keras.Input((7, 7, 4))
    y = L.Conv2D(8, 3, name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.Activation("relu", name="relu")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(3, name="fc")(y)
    return keras.Model(x, y, name=name)


SMALL_CNN_FLOPS = CONV_3x3_4_8_5x5 + 2 * 200 + 0 + 200 + (2 * 8 * 3 + 3)


def test_functional_model_totals_and_order():
    model = _small_cnn()
    cost = count_cost(model)
    assert isinstance(cost, ModelCost)
    assert [r.name for r in cost.layers] == ["conv", "bn", "relu", "gap", "fc"]
    assert all(isinstance(r, LayerCost) for r in cost.layers)
    assert cost.params == model.count_params()
    assert cost.params == sum(r.params for r in cost.layers)
    assert cost.flops == SMALL_CNN_FLOPS
    assert cost.macs == SMALL_CNN_FLOPS / 2
    assert cost.layer("conv").flops == CONV_3x3_4_8_5x5
    with pytest.raises(KeyError, match="nope"):
        cost.layer("nope")


def test_top_level_export():
    assert keras_neuronprune.count_cost is count_cost


def test_sequential_model_matches_functional():
    model = keras.Sequential(
        [
            keras.Input((7, 7, 4)),
            L.Conv2D(8, 3, name="conv"),
            L.BatchNormalization(name="bn"),
            L.Activation("relu", name="relu"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(3, name="fc"),
        ]
    )
    cost = count_cost(model)
    assert [r.name for r in cost.layers] == ["conv", "bn", "relu", "gap", "fc"]
    assert cost.flops == SMALL_CNN_FLOPS
    assert cost.params == model.count_params()


def test_sequential_built_without_input_layer():
    model = keras.Sequential([L.Dense(4), L.Dense(2)])
    model.build((None, 3))
    cost = count_cost(model)
    assert cost.flops == (2 * 3 * 4 + 4) + (2 * 4 * 2 + 2)


def test_nested_functional_model_is_expanded_with_path_names():
    inner = _small_cnn("backbone")
    x = keras.Input((7, 7, 4))
    y = inner(x)
    y = L.Dense(2, name="head")(y)
    model = keras.Model(x, y)
    cost = count_cost(model)
    names = [r.name for r in cost.layers]
    assert names == [
        "backbone/conv",
        "backbone/bn",
        "backbone/relu",
        "backbone/gap",
        "backbone/fc",
        "head",
    ]
    assert cost.flops == SMALL_CNN_FLOPS + 2 * 3 * 2 + 2
    assert cost.params == model.count_params()


def test_nested_sequential_in_functional():
    stem = keras.Sequential(
        [keras.Input((8, 8, 3)), L.Conv2D(4, 2, strides=2, name="c")],
        name="stem",
    )
    x = keras.Input((8, 8, 3))
    y = L.Add(name="add")([stem(x), stem(x)])
    model = keras.Model(x, y)
    cost = count_cost(model)
    conv = 2 * 4 * 3 * 4 * 16 + 4 * 16
    assert [r.name for r in cost.layers] == ["stem/c", "stem/c", "add"]
    assert [r.call_index for r in cost.layers] == [0, 1, 0]
    assert [r.params for r in cost.layers] == [4 * 3 * 4 + 4, 0, 0]
    assert cost.flops == 2 * conv + 64


def test_nested_model_with_undefined_spatial_dims_uses_call_shapes():
    inner_in = keras.Input((None, None, 3))
    inner = keras.Model(
        inner_in,
        L.Conv2D(5, 3, padding="same", name="c")(inner_in),
        name="fcn",
    )
    x = keras.Input((6, 6, 3))
    model = keras.Model(x, L.GlobalMaxPooling2D(name="gmp")(inner(x)))
    n_nodes = len(inner.get_layer("c")._inbound_nodes)
    cost = count_cost(model)
    row = cost.layer("fcn/c")
    assert row.input_shape == (1, 6, 6, 3)
    assert row.output_shape == (1, 6, 6, 5)
    assert row.flops == 2 * 9 * 3 * 5 * 36 + 5 * 36
    # The user's model is left untouched: no new call nodes were recorded.
    assert len(inner.get_layer("c")._inbound_nodes) == n_nodes


def test_shared_layer_counts_params_once_and_flops_per_call():
    shared = L.Dense(4, name="shared")
    a = keras.Input((3,))
    b = keras.Input((3,))
    y = L.Concatenate(name="cat")([shared(a), shared(b)])
    model = keras.Model([a, b], y)
    cost = count_cost(model)
    rows = [r for r in cost.layers if r.name == "shared"]
    assert [r.call_index for r in rows] == [0, 1]
    assert [r.params for r in rows] == [16, 0]
    assert [r.flops for r in rows] == [2 * 3 * 4 + 4] * 2
    assert cost.params == model.count_params() == 16


def test_undefined_dims_need_input_shape():
    x = keras.Input((None, None, 3))
    y = L.Conv2D(4, 3, name="c")(x)
    model = keras.Model(x, L.GlobalAveragePooling2D()(y))
    with pytest.raises(ValueError, match="input_shape=\\(224, 224, 3\\)"):
        count_cost(model)
    cost = count_cost(model, input_shape=(10, 10, 3))
    assert cost.layer("c").output_shape == (1, 8, 8, 4)
    assert cost.layer("c").flops == 2 * 9 * 3 * 4 * 64 + 4 * 64
    # The stored graph shapes are unchanged.
    assert tuple(model.inputs[0].shape) == (None, None, None, 3)


def test_fixed_batch_size_is_counted_as_one():
    x = keras.Input((5,), batch_size=8)
    model = keras.Model(x, L.Dense(2, name="d")(x))
    cost = count_cost(model)
    assert cost.layer("d").input_shape == (1, 5)
    assert cost.flops == 2 * 5 * 2 + 2


@pytest.mark.parametrize(
    "bad, match",
    [
        ("224", "input_shape"),
        ([(4,), (4,)], "one shape per model input"),
        ((1, 7, 7, 4), "batch dimension"),
        ((7.0, 7, 4), "input_shape"),
    ],
)
def test_bad_input_shape(bad, match):
    with pytest.raises(ValueError, match=match):
        count_cost(_small_cnn(), input_shape=bad)


def test_rejects_non_models_and_graphless_models():
    with pytest.raises(TypeError, match="must be a keras.Model"):
        count_cost(L.Dense(3))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(keras.ops.ones((1, 3)))
    with pytest.raises(ValueError, match="subclassed"):
        count_cost(sub)
    with pytest.raises(ValueError, match="Sequential"):
        count_cost(keras.Sequential([L.Dense(2)]))


class _Scale(L.Layer):
    def call(self, x):
        return 2.0 * x


class _Eager(L.Layer):
    """Runs eagerly only, so its call cannot be traced into its ops."""

    def call(self, x):
        return x * float(keras.ops.convert_to_numpy(keras.ops.mean(x)))

    def compute_output_shape(self, input_shape):
        return input_shape


def test_unknown_layer_warns_and_custom_rule_counts_it():
    x = keras.Input((4, 3))
    opaque = keras.Model(x, _Eager(name="scale")(x))
    with pytest.warns(UserWarning, match="_Eager: scale"):
        cost = count_cost(opaque)
    assert cost.uncounted == ("scale",)
    assert cost.flops == 0
    assert "No FLOP rule" in str(cost)

    # A custom layer made of keras.ops is traced: its ops are counted.
    model = keras.Model(x, _Scale(name="scale")(x))
    cost = count_cost(model)
    assert cost.uncounted == ()
    assert cost.flops == 12
    assert all(row.name.startswith("scale/") for row in cost.layers)

    register_flops_rule(_Scale, lambda layer, ins, outs: math.prod(outs[0]))
    try:
        cost = count_cost(model)
    finally:
        unregister_flops_rule(_Scale)
    assert cost.uncounted == ()
    assert cost.flops == 12
    assert [row.name for row in cost.layers] == ["scale"]


def test_register_flops_rule_rejects_bad_arguments():
    with pytest.raises(TypeError, match="layer_class"):
        register_flops_rule("Dense", lambda *a: 0)
    with pytest.raises(TypeError, match="rule"):
        register_flops_rule(_Scale, 3)


def test_custom_rule_overrides_builtin_for_subclass_only():
    class MyDense(L.Dense):
        pass

    x = keras.Input((3,))
    y = MyDense(2, name="mine")(x)
    model = keras.Model(x, L.Dense(2, name="plain")(y))
    register_flops_rule(MyDense, lambda layer, ins, outs: 7)
    try:
        cost = count_cost(model)
    finally:
        unregister_flops_rule(MyDense)
    assert cost.layer("mine").flops == 7
    assert cost.layer("plain").flops == 2 * 2 * 2 + 2


def test_unknown_activation_is_reported():
    x = keras.Input((3,))
    y = L.Dense(2, activation=lambda t: t * 2.0, name="d")(x)
    model = keras.Model(x, y)
    with pytest.warns(UserWarning, match="activation <lambda>: d"):
        cost = count_cost(model)
    assert cost.uncounted == ("d",)


def test_to_dict_is_json_and_str_is_a_table():
    cost = count_cost(_small_cnn())
    data = json.loads(json.dumps(cost.to_dict()))
    assert data["flops"] == SMALL_CNN_FLOPS
    assert data["params"] == cost.params
    assert data["layers"][0] == {
        "name": "conv",
        "class_name": "Conv2D",
        "params": 296,
        "flops": CONV_3x3_4_8_5x5,
        "input_shapes": [[1, 7, 7, 4]],
        "output_shapes": [[1, 5, 5, 8]],
        "channels_in": 4,
        "channels_out": 8,
        "call_index": 0,
    }
    text = str(cost)
    lines = text.splitlines()
    assert lines[0] == "Cost of 'small' (batch size 1)"
    assert any(line.startswith("conv ") and "14,600" in line for line in lines)
    assert f"Total FLOPs: {SMALL_CNN_FLOPS:,}" in text
    assert cost.flops_by_class()["Conv2D"] == CONV_3x3_4_8_5x5
