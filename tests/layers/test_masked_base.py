"""The one masked-layer base and its registry (channel and kernel masks)."""

import warnings

import keras
import numpy as np
import pytest

from keras_neuronprune import layers as knp_layers
from keras_neuronprune.graph import LayerHandler
from keras_neuronprune.graph import register_layer_handler
from keras_neuronprune.graph.handlers import get_handler
from keras_neuronprune.layers import _registry
from keras_neuronprune.sparsity import layers as sparse_layers

RNG = np.random.default_rng(3)

SUPPORTED = {
    keras.layers.Conv1D: knp_layers.MaskedConv1D,
    keras.layers.Conv2D: knp_layers.MaskedConv2D,
    keras.layers.Conv3D: knp_layers.MaskedConv3D,
    keras.layers.DepthwiseConv1D: knp_layers.MaskedDepthwiseConv1D,
    keras.layers.DepthwiseConv2D: knp_layers.MaskedDepthwiseConv2D,
    keras.layers.SeparableConv2D: knp_layers.MaskedSeparableConv2D,
    keras.layers.Dense: knp_layers.MaskedDense,
    keras.layers.BatchNormalization: knp_layers.MaskedBatchNormalization,
}
WEIGHT_MASKED = {
    keras.layers.Conv1D: sparse_layers.WeightMaskedConv1D,
    keras.layers.Conv2D: sparse_layers.WeightMaskedConv2D,
    keras.layers.Conv3D: sparse_layers.WeightMaskedConv3D,
    keras.layers.DepthwiseConv1D: sparse_layers.WeightMaskedDepthwiseConv1D,
    keras.layers.DepthwiseConv2D: sparse_layers.WeightMaskedDepthwiseConv2D,
    keras.layers.Dense: sparse_layers.WeightMaskedDense,
}


def _binary(shape, keep=0.6):
    return (RNG.random(shape) < keep).astype("float32")


def _randomise(layer):
    for w in layer.weights:
        if w.name.split("/")[-1] not in knp_layers.MASK_WEIGHT_NAMES:
            w.assign(RNG.normal(size=w.shape).astype("float32"))


def test_registry_maps_every_supported_class_and_handlers_report_it():
    specs = knp_layers.masked_layer_specs()
    for layer_class, masked_class in SUPPORTED.items():
        spec = knp_layers.masked_layer_spec(layer_class)
        assert spec == specs[layer_class]
        assert spec.masked_class is masked_class
        assert masked_class.parent_class is layer_class
        assert spec.kernel_axes == masked_class.kernel_axes
        handler = _registry_handler(layer_class)
        assert handler.masked_class(layer_class) is masked_class
        assert handler.kernel_axes(layer_class) == spec.kernel_axes
    assert set(SUPPORTED) <= set(specs)
    assert knp_layers.masked_class_for(keras.layers.DepthwiseConv1D(3)) is (
        knp_layers.MaskedDepthwiseConv1D
    )
    # The kernel axes give the output axes the sparsity methods reduce over.
    assert knp_layers.MaskedDense.num_output_axes == 1
    assert knp_layers.MaskedDepthwiseConv2D.num_output_axes == 2
    assert knp_layers.MaskedDepthwiseConv2D.kernel_axes["kernel"] == (
        knp_layers.KernelAxes(None, (-2, -1))
    )


def _registry_handler(layer_class):
    kwargs = {"units": 2} if layer_class is keras.layers.Dense else {}
    if "Conv" in layer_class.__name__:
        kwargs = {"kernel_size": 1}
        if "Depthwise" not in layer_class.__name__:
            kwargs["filters"] = 2
    return get_handler(layer_class(**kwargs))


def test_exact_class_only_and_weight_masked_front():
    class MyDense(keras.layers.Dense):
        pass

    assert knp_layers.masked_layer_spec(MyDense) is None
    assert knp_layers.masked_class_for(MyDense(2)) is None
    assert dict(sparse_layers.WEIGHT_MASKED_CLASSES) == WEIGHT_MASKED
    with pytest.warns(DeprecationWarning, match="MASKED_CLASSES"):
        old = sparse_layers.MASKED_CLASSES
    assert dict(old) == WEIGHT_MASKED
    with pytest.warns(DeprecationWarning, match="MASKED_LAYERS"):
        by_name = knp_layers.MASKED_LAYERS
    assert by_name == {
        **{c.__name__: m for c, m in SUPPORTED.items()},
        "MultiHeadAttention": knp_layers.MaskedMultiHeadAttention,
    }
    for masked in WEIGHT_MASKED.values():
        assert issubclass(masked, sparse_layers.WeightMaskedMixin)
        assert issubclass(masked, knp_layers.MaskedLayerMixin)


def test_dense_channel_and_kernel_masks_match_numpy():
    layer = knp_layers.MaskedDense(
        5, activation="sigmoid", use_kernel_mask=True
    )
    x = RNG.normal(size=(4, 6)).astype("float32")
    layer(x)
    _randomise(layer)
    kernel_mask = _binary((6, 5))
    in_mask, out_mask = _binary(6), _binary(5)
    layer.kernel_mask.assign(kernel_mask)
    layer.set_input_mask(in_mask)
    layer.set_output_mask(out_mask)
    kernel, bias = layer.kernel_variable.numpy(), layer.bias.numpy()
    used = kernel * kernel_mask * in_mask[:, None]
    expected = out_mask / (1 + np.exp(-(x @ used + bias)))
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)
    np.testing.assert_allclose(layer.masked_kernel(), used, atol=1e-7)
    stripped_kernel, stripped_bias = layer.stripped_weights()
    np.testing.assert_allclose(stripped_kernel, used * out_mask, atol=1e-7)
    np.testing.assert_allclose(stripped_bias, bias * out_mask, atol=1e-7)


def test_grouped_conv_channel_and_kernel_masks_match_numpy():
    layer = knp_layers.MaskedConv2D(4, 1, groups=2, use_kernel_mask=True)
    x = RNG.normal(size=(2, 3, 3, 6)).astype("float32")
    layer(x)
    _randomise(layer)
    kernel_mask = _binary((1, 1, 3, 4))
    in_mask, out_mask = _binary(6), _binary(4)
    layer.kernel_mask.assign(kernel_mask)
    layer.set_input_mask(in_mask)
    layer.set_output_mask(out_mask)
    kernel = (layer.kernel_variable.numpy() * kernel_mask)[0, 0]
    xm = x * in_mask
    # Group g: inputs 3g..3g+2 feed outputs 2g..2g+1.
    parts = [
        xm[..., 3 * g : 3 * g + 3] @ kernel[:, 2 * g : 2 * g + 2]
        for g in (0, 1)
    ]
    expected = np.concatenate(parts, axis=-1)
    expected = (expected + layer.bias.numpy()) * out_mask
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(layer.to_parent()(x)), expected, atol=1e-5
    )


def test_depthwise_kernel_mask_and_output_mask_strip_exactly():
    layer = knp_layers.MaskedDepthwiseConv2D(
        3, depth_multiplier=2, activation="relu", use_kernel_mask=True
    )
    x = RNG.normal(size=(1, 5, 5, 3)).astype("float32")
    layer(x)
    _randomise(layer)
    layer.kernel_mask.assign(_binary((3, 3, 3, 2)))
    layer.set_output_mask([1, 0, 1, 1, 0, 1])
    parent = layer.to_parent()
    assert type(parent) is keras.layers.DepthwiseConv2D
    np.testing.assert_allclose(
        np.asarray(parent(x)), np.asarray(layer(x)), atol=1e-5
    )
    assert np.all(np.asarray(layer(x))[..., [1, 4]] == 0)


def test_kernel_mask_arguments_are_checked():
    with pytest.raises(ValueError, match="use_kernel_mask=True"):
        knp_layers.MaskedBatchNormalization(use_kernel_mask=True)
    with pytest.raises(ValueError, match="learned_mask=True"):
        knp_layers.MaskedDense(3, learned_mask=True)
    with pytest.raises(ValueError, match="lora_rank=2"):
        knp_layers.MaskedDense(3, use_kernel_mask=True, lora_rank=2)
    alias = sparse_layers.WeightMaskedDense(3)
    alias.build((1, 4))
    assert alias.output_mask is None and alias.input_mask is None
    with pytest.raises(ValueError, match="no `output_mask`"):
        alias.set_output_mask([1, 1, 1])


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (knp_layers.MaskedConv2D, {"filters": 3, "kernel_size": 2}),
        (knp_layers.MaskedDense, {"units": 3}),
        (sparse_layers.WeightMaskedConv1D, {"filters": 3, "kernel_size": 2}),
    ],
)
def test_get_config_round_trip_with_kernel_mask(cls, kwargs):
    layer = cls(**kwargs, use_kernel_mask=True, learned_mask=True)
    config = layer.get_config()
    assert config["learned_mask"] is True
    # The WeightMasked* spellings always have a kernel mask: not written.
    weight_masked = issubclass(cls, sparse_layers.WeightMaskedMixin)
    assert ("use_kernel_mask" in config) is not weight_masked
    again = cls.from_config(config)
    assert again.get_config() == config
    assert again.use_kernel_mask and again.learned_mask
    parent = cls.parent_class.from_config(layer.parent_config())
    assert set(parent.get_config()) == set(layer.parent_config())


def test_weight_masked_alias_loads_from_saved_keras(tmp_path):
    inputs = keras.Input((6, 6, 2))
    x = sparse_layers.WeightMaskedConv2D(4, 3, name="conv")(inputs)
    x = sparse_layers.WeightMaskedDepthwiseConv2D(2, name="dw")(x)
    x = keras.layers.Flatten()(x)
    x = sparse_layers.WeightMaskedDense(3, learned_mask=True, name="fc")(x)
    y = knp_layers.MaskedDense(2, use_kernel_mask=True, name="both")(x)
    model = keras.Model(inputs, y)
    for name in ("conv", "dw", "fc", "both"):
        layer = model.get_layer(name)
        _randomise(layer)
        layer.kernel_mask.assign(_binary(layer.kernel_mask.shape))
    score = model.get_layer("fc").kernel_mask_score
    score.assign(RNG.normal(size=score.shape).astype("float32"))
    model.get_layer("both").set_input_mask([1, 0, 1])
    data = RNG.normal(size=(2, 6, 6, 2)).astype("float32")
    expected = np.asarray(model(data))
    path = tmp_path / "weight_masked.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        loaded = keras.models.load_model(path)
    for name, cls in (
        ("conv", sparse_layers.WeightMaskedConv2D),
        ("dw", sparse_layers.WeightMaskedDepthwiseConv2D),
        ("fc", sparse_layers.WeightMaskedDense),
        ("both", knp_layers.MaskedDense),
    ):
        assert type(loaded.get_layer(name)) is cls
    np.testing.assert_allclose(np.asarray(loaded(data)), expected, atol=1e-5)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _Scale(keras.layers.Layer):
    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1],), name="kernel")

    def call(self, x):
        return x * self.kernel


class _MaskedScale(knp_layers.MaskedLayerMixin, _Scale):
    parent_class = _Scale
    kernel_axes = {"kernel": knp_layers.KernelAxes(None, (0,))}

    def _mask_channels(self, input_shape):
        return None, input_shape[-1]

    def call(self, x):
        return self._mask_outputs(x * self._masked_weight("kernel"))


def test_register_layer_handler_gives_a_custom_masked_class():
    class ScaleHandler(LayerHandler):
        pass

    try:
        register_layer_handler(
            _Scale, ScaleHandler().with_masked_class(_MaskedScale)
        )
        assert knp_layers.masked_class_for(_Scale()) is _MaskedScale
        spec = knp_layers.masked_layer_spec(_Scale)
        assert spec.kernel_axes == _MaskedScale.kernel_axes
        layer = _MaskedScale()
        layer(np.ones((1, 3), "float32"))
        layer.kernel.assign([1.0, 2.0, 3.0])
        layer.set_output_mask([1, 0, 1])
        np.testing.assert_allclose(
            np.asarray(layer(np.ones((1, 3), "float32"))), [[1.0, 0.0, 3.0]]
        )
        with pytest.raises(TypeError, match="masked_class"):
            register_layer_handler(
                _Scale, ScaleHandler().with_masked_class(keras.layers.Dense)
            )
    finally:
        _registry._REGISTRY.pop(_Scale, None)
