"""Masked layers equal their parent layer with channels removed."""

import keras
import numpy as np
import pytest

from keras_neuronprune import layers as knp_layers

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.normal(size=shape).astype("float32")


def _mask(n, removed):
    mask = np.ones(n, "float32")
    mask[list(removed)] = 0
    return mask


def _set_random_weights(layer):
    for w in layer.weights:
        if w.name.split("/")[-1] in knp_layers.MASK_WEIGHT_NAMES:
            continue
        w.assign(_rand(*w.shape))


def _parent_weights(layer):
    return [
        w.numpy()
        for w in layer.weights
        if w.name.split("/")[-1] not in knp_layers.MASK_WEIGHT_NAMES
    ]


CONV_CASES = [
    (knp_layers.MaskedConv1D, keras.layers.Conv1D, (2, 9, 5), 1),
    (knp_layers.MaskedConv2D, keras.layers.Conv2D, (2, 7, 6, 5), 1),
    (knp_layers.MaskedConv3D, keras.layers.Conv3D, (1, 5, 5, 4, 5), 1),
]


@pytest.mark.parametrize("masked_cls,parent_cls,shape,_", CONV_CASES)
def test_conv_mask_equals_physical_removal(masked_cls, parent_cls, shape, _):
    in_ch, filters = shape[-1], 6
    layer = masked_cls(filters, 3, activation="sigmoid", padding="same")
    # Upstream sigmoid: removed input channels are far from 0.
    x = 1.0 / (1.0 + np.exp(-_rand(*shape)))
    layer(x)
    _set_random_weights(layer)
    removed_in, removed_out = [1, 3], [0, 4]
    layer.set_input_mask(_mask(in_ch, removed_in))
    layer.set_output_mask(_mask(filters, removed_out))
    y = np.asarray(layer(x))

    keep_in = [c for c in range(in_ch) if c not in removed_in]
    keep_out = [c for c in range(filters) if c not in removed_out]
    config = layer.get_config()
    config["filters"] = len(keep_out)
    thin = parent_cls.from_config(config)
    thin(x[..., keep_in])
    kernel, bias = _parent_weights(layer)
    thin.set_weights([kernel[..., keep_in, :][..., keep_out], bias[keep_out]])
    expected = np.asarray(thin(x[..., keep_in]))
    np.testing.assert_allclose(y[..., keep_out], expected, atol=1e-5)
    assert np.all(y[..., removed_out] == 0.0)


def test_conv1d_causal_and_strip():
    layer = knp_layers.MaskedConv1D(4, 3, padding="causal", activation="relu")
    x = _rand(2, 8, 3)
    layer(x)
    _set_random_weights(layer)
    layer.set_input_mask([1, 0, 1])
    layer.set_output_mask([1, 1, 0, 1])
    parent = layer.to_parent()
    assert type(parent) is keras.layers.Conv1D
    np.testing.assert_allclose(
        np.asarray(parent(x)), np.asarray(layer(x)), atol=1e-5
    )


def test_grouped_conv_input_mask_covers_all_input_channels():
    layer = knp_layers.MaskedConv2D(6, 3, groups=2, activation="tanh")
    x = _rand(2, 6, 6, 4)
    layer(x)
    _set_random_weights(layer)
    assert layer.input_mask.shape == (4,)
    in_mask = _mask(4, [0, 3])
    layer.set_input_mask(in_mask)
    y = np.asarray(layer(x))
    # Zeroing the masked input channels of x must give the same output.
    ref = keras.layers.Conv2D.from_config(layer.get_config())
    ref(x)
    ref.set_weights(_parent_weights(layer))
    np.testing.assert_allclose(y, np.asarray(ref(x * in_mask)), atol=1e-5)
    # And the stripped parent (kernel folded) agrees without touching x.
    np.testing.assert_allclose(y, np.asarray(layer.to_parent()(x)), atol=1e-5)


def test_conv_channels_first():
    layer = knp_layers.MaskedConv2D(3, 1, data_format="channels_first")
    x = _rand(2, 4, 5, 5)
    layer(x)
    layer.set_output_mask([1, 0, 1])
    y = np.asarray(layer(x))
    assert layer.input_mask.shape == (4,)
    assert np.all(y[:, 1] == 0) and np.any(y[:, 0] != 0)


def test_dense_after_flatten_and_rank3():
    inputs = keras.Input((3, 2, 4))
    flat = keras.layers.Flatten()(inputs)
    dense = knp_layers.MaskedDense(5, activation="sigmoid")
    model = keras.Model(inputs, dense(flat))
    assert dense.input_mask.shape == (24,)
    _set_random_weights(dense)
    # Remove channel 1 of the (3, 2, 4) feature map: every spatial position.
    channel_removed = np.ones((3, 2, 4), "float32")
    channel_removed[..., 1] = 0
    dense.set_input_mask(channel_removed.reshape(-1))
    dense.set_output_mask(_mask(5, [2]))
    x = _rand(3, 3, 2, 4)
    y = np.asarray(model(x))
    kernel, bias = _parent_weights(dense)
    feats = (x * channel_removed).reshape(3, -1)
    expected = 1 / (1 + np.exp(-(feats @ kernel + bias)))
    expected[:, 2] = 0
    np.testing.assert_allclose(y, expected, atol=1e-5)
    assert np.all(y[:, 2] == 0)

    seq = knp_layers.MaskedDense(3)
    z = _rand(2, 7, 4)
    seq(z)
    seq.set_input_mask([0, 1, 1, 1])
    kernel, bias = _parent_weights(seq)
    np.testing.assert_allclose(
        np.asarray(seq(z)), z[..., 1:] @ kernel[1:] + bias, atol=1e-5
    )


def test_depthwise_mask_over_output_channels():
    layer = knp_layers.MaskedDepthwiseConv2D(
        3, depth_multiplier=2, activation="sigmoid"
    )
    x = _rand(2, 6, 6, 3)
    layer(x)
    _set_random_weights(layer)
    assert layer.output_mask.shape == (6,)
    assert layer.input_mask is None
    mask = _mask(6, [2, 3])  # both outputs of input channel 1
    layer.set_output_mask(mask)
    ref = keras.layers.DepthwiseConv2D.from_config(layer.get_config())
    ref(x)
    ref.set_weights(_parent_weights(layer))
    np.testing.assert_allclose(
        np.asarray(layer(x)), np.asarray(ref(x)) * mask, atol=1e-6
    )
    with pytest.raises(ValueError, match="no `input_mask`"):
        layer.set_input_mask([1, 1, 1])


def test_depthwise_strip_relu():
    layer = knp_layers.MaskedDepthwiseConv2D(
        3, depth_multiplier=2, activation="relu"
    )
    x = _rand(1, 5, 5, 2)
    layer(x)
    _set_random_weights(layer)
    layer.set_output_mask([1, 0, 0, 1])
    np.testing.assert_allclose(
        np.asarray(layer.to_parent()(x)), np.asarray(layer(x)), atol=1e-5
    )


def test_separable_input_and_output_masks():
    layer = knp_layers.MaskedSeparableConv2D(
        4, 3, depth_multiplier=2, activation="sigmoid"
    )
    x = 1 / (1 + np.exp(-_rand(2, 6, 6, 3)))
    layer(x)
    _set_random_weights(layer)
    layer.set_input_mask([1, 0, 1])
    layer.set_output_mask([1, 1, 0, 1])
    y = np.asarray(layer(x))
    dw, pw, bias = _parent_weights(layer)
    keep_in, keep_out = [0, 2], [0, 1, 3]
    pw_rows = [c * 2 + m for c in keep_in for m in range(2)]
    config = layer.get_config()
    config["filters"] = 3
    thin = keras.layers.SeparableConv2D.from_config(config)
    thin(x[..., keep_in])
    thin.set_weights(
        [dw[:, :, keep_in], pw[:, :, pw_rows][..., keep_out], bias[keep_out]]
    )
    np.testing.assert_allclose(
        y[..., keep_out], np.asarray(thin(x[..., keep_in])), atol=1e-5
    )
    assert np.all(y[..., 2] == 0)


def test_masked_batch_normalization():
    layer = knp_layers.MaskedBatchNormalization()
    x = _rand(4, 5, 3) + 2.0
    layer(x)
    _set_random_weights(layer)
    layer.moving_variance.assign(np.abs(_rand(3)) + 0.5)
    layer.set_output_mask([1, 0, 1])
    ref = keras.layers.BatchNormalization.from_config(layer.get_config())
    ref(x)
    ref.set_weights(_parent_weights(layer))
    for training in (False, True):
        y = np.asarray(layer(x, training=training))
        expected = np.asarray(ref(x, training=training)) * [1, 0, 1]
        np.testing.assert_allclose(y, expected, atol=1e-5)
        assert np.all(y[..., 1] == 0)
    stripped = layer.to_parent()
    np.testing.assert_allclose(
        np.asarray(stripped(x)), np.asarray(layer(x)), atol=1e-5
    )


ALL_MASKED = [
    (knp_layers.MaskedConv1D, {"filters": 2, "kernel_size": 2}, (1, 4, 3)),
    (knp_layers.MaskedConv2D, {"filters": 2, "kernel_size": 1}, (1, 3, 3, 2)),
    (
        knp_layers.MaskedConv3D,
        {"filters": 2, "kernel_size": 1},
        (1, 2, 2, 2, 2),
    ),
    (knp_layers.MaskedDepthwiseConv2D, {"kernel_size": 1}, (1, 3, 3, 2)),
    (
        knp_layers.MaskedSeparableConv2D,
        {"filters": 2, "kernel_size": 1},
        (1, 3, 3, 2),
    ),
    (knp_layers.MaskedDense, {"units": 3}, (1, 4)),
    (knp_layers.MaskedBatchNormalization, {}, (2, 3)),
]


@pytest.mark.parametrize("cls,kwargs,shape", ALL_MASKED)
def test_config_is_parents_and_round_trips(cls, kwargs, shape):
    layer = cls(**kwargs)
    layer(np.zeros(shape, "float32"))
    config = layer.get_config()
    parent = cls.parent_class(**kwargs)
    assert set(config) == set(parent.get_config())
    clone = cls.from_config(config)
    assert clone.get_config() == config
    blob = keras.saving.serialize_keras_object(layer)
    assert blob["registered_name"] == f"keras_neuronprune>{cls.__name__}"
    again = keras.saving.deserialize_keras_object(blob)
    assert type(again) is cls
    assert cls.parent_class.from_config(config).get_config() == config
    # Masks are non-trainable and initialised to ones.
    masks = [w for w in layer.non_trainable_weights if "mask" in w.name]
    assert masks and all(np.all(m.numpy() == 1) for m in masks)
    assert not any("mask" in w.name for w in layer.trainable_weights)


def test_set_mask_validation():
    layer = knp_layers.MaskedDense(3)
    layer(np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="must have shape"):
        layer.set_output_mask([1, 0])
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer.set_output_mask([1, 0.5, 1])
    layer.set_output_mask([True, False, True])
    np.testing.assert_array_equal(layer.output_mask.numpy(), [1, 0, 1])


def test_masked_class_for():
    assert (
        knp_layers.masked_class_for(keras.layers.Conv2D(1, 1))
        is knp_layers.MaskedConv2D
    )
    assert knp_layers.masked_class_for(keras.layers.ReLU()) is None

    class MyConv(keras.layers.Conv2D):
        pass

    assert knp_layers.masked_class_for(MyConv(1, 1)) is None
