"""Exact FLOP formulas of single layers, checked by hand."""

import math

import keras
import numpy as np
import pytest

from keras_neuronprune.cost import count_cost

L = keras.layers


def _single(layer, *shapes):
    """Cost row of `layer` called on inputs of the given (batchless) shapes."""
    inputs = [keras.Input(s) for s in shapes]
    outputs = layer(inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(inputs, outputs)
    cost = count_cost(model)
    assert cost.params == model.count_params()
    (row,) = [r for r in cost.layers if r.name == layer.name]
    return row


def test_conv2d_formula_from_the_brief():
    row = _single(L.Conv2D(8, 3), (7, 7, 4))
    assert row.output_shape == (1, 5, 5, 8)
    assert row.flops == 2 * 9 * 4 * 8 * 25 + 8 * 25
    assert row.params == 9 * 4 * 8 + 8
    assert (row.channels_in, row.channels_out) == (4, 8)


def test_conv2d_without_bias_strided_same():
    row = _single(
        L.Conv2D(6, 3, strides=2, padding="same", use_bias=False), (8, 8, 4)
    )
    assert row.output_shape == (1, 4, 4, 6)
    assert row.flops == 2 * 9 * 4 * 6 * 16


def test_grouped_conv2d():
    row = _single(L.Conv2D(8, 3, groups=2), (7, 7, 4))
    assert row.flops == 2 * 9 * (4 // 2) * 8 * 25 + 8 * 25
    assert row.params == 9 * 2 * 8 + 8


def test_conv2d_channels_first():
    row = _single(L.Conv2D(8, 3, data_format="channels_first"), (4, 7, 7))
    assert row.output_shape == (1, 8, 5, 5)
    assert (row.channels_in, row.channels_out) == (4, 8)
    assert row.flops == 2 * 9 * 4 * 8 * 25 + 8 * 25


def test_conv1d_and_conv3d():
    row = _single(L.Conv1D(5, 3, groups=1), (10, 2))
    assert row.flops == 2 * 3 * 2 * 5 * 8 + 5 * 8
    row = _single(L.Conv3D(4, 2, groups=2), (3, 3, 3, 6))
    assert row.output_shape == (1, 2, 2, 2, 4)
    assert row.flops == 2 * 8 * 3 * 4 * 8 + 4 * 8


def test_conv_with_fused_activation():
    relu = _single(L.Conv2D(8, 3, activation="relu"), (7, 7, 4))
    silu = _single(L.Conv2D(8, 3, activation="silu"), (7, 7, 4))
    assert relu.flops == 2 * 9 * 4 * 8 * 25 + 8 * 25
    assert silu.flops == relu.flops + 2 * 8 * 25


@pytest.mark.parametrize(
    "layer_cls, in_shape, spatial_in",
    [
        (L.Conv1DTranspose, (5, 3), 5),
        (L.Conv2DTranspose, (5, 5, 3), 25),
        (L.Conv3DTranspose, (2, 3, 3, 3), 18),
    ],
)
def test_conv_transpose(layer_cls, in_shape, spatial_in):
    row = _single(layer_cls(4, 3, strides=2, padding="same"), in_shape)
    out = math.prod(row.output_shape)
    taps = 3 ** (len(in_shape) - 1)
    assert row.flops == 2 * spatial_in * 3 * taps * 4 + out
    assert row.channels_in == 3 and row.channels_out == 4


def test_depthwise_conv2d_with_multiplier():
    row = _single(L.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 5))
    assert row.output_shape == (1, 4, 4, 10)
    assert row.flops == 2 * 9 * 10 * 16 + 10 * 16
    assert (row.channels_in, row.channels_out) == (5, 10)


def test_depthwise_conv1d():
    row = _single(L.DepthwiseConv1D(3, use_bias=False), (8, 4))
    assert row.flops == 2 * 3 * 4 * 6


def test_separable_conv2d_and_1d():
    row = _single(L.SeparableConv2D(7, 3, depth_multiplier=2), (6, 6, 5))
    depthwise = 2 * 9 * 5 * 2 * 16
    pointwise = 2 * 10 * 7 * 16
    assert row.flops == depthwise + pointwise + 7 * 16
    row = _single(L.SeparableConv1D(4, 3, use_bias=False), (9, 3))
    assert row.flops == 2 * 3 * 3 * 7 + 2 * 3 * 4 * 7


def test_dense_2d_and_nd_inputs():
    row = _single(L.Dense(5), (7,))
    assert row.flops == 2 * 7 * 5 + 5
    row = _single(L.Dense(5, use_bias=False, activation="softmax"), (3, 4, 7))
    assert row.output_shape == (1, 3, 4, 5)
    assert row.flops == 2 * 7 * 5 * 12 + 5 * 5 * 12


def test_einsum_dense():
    layer = L.EinsumDense("abc,cd->abd", output_shape=(None, 6), bias_axes="d")
    row = _single(layer, (4, 3))
    assert row.flops == 2 * 4 * 3 * 6 + 4 * 6
    layer = L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 5))
    row = _single(layer, (4, 3))
    assert row.flops == 2 * 4 * 3 * 2 * 5
    layer = L.EinsumDense("...b,bc->...c", output_shape=6)
    row = _single(layer, (2, 3, 4))
    assert row.flops == 2 * 2 * 3 * 4 * 6


@pytest.mark.parametrize(
    "layer, per_element",
    [
        (L.BatchNormalization(), 2),
        (L.LayerNormalization(), 8),
        (L.LayerNormalization(center=False, scale=False), 6),
        (L.GroupNormalization(groups=2), 8),
        (L.RMSNormalization(), 4),
        (L.UnitNormalization(), 3),
        (L.Rescaling(1 / 255.0, offset=-1.0), 2),
        (L.Normalization(mean=0.5, variance=4.0), 2),
        (L.Softmax(), 5),
        (L.Activation("relu"), 0),
        (L.Activation("sigmoid"), 0),
        (L.Activation("silu"), 2),
        (L.Activation("gelu"), 4),
        (L.Activation("hard_silu"), 3),
        (L.ReLU(6.0), 0),
        (L.LeakyReLU(), 0),
        (L.PReLU(), 4),
        (L.Dropout(0.5), 0),
        (L.ZeroPadding2D(0), 0),
    ],
    ids=lambda v: v if isinstance(v, int) else type(v).__name__,
)
def test_elementwise_layers(layer, per_element):
    row = _single(layer, (4, 4, 6))
    assert row.flops == per_element * 4 * 4 * 6


def test_batch_normalization_params_include_moving_statistics():
    row = _single(L.BatchNormalization(), (4, 4, 6))
    assert row.params == 4 * 6


@pytest.mark.parametrize(
    "layer, in_shape, expected",
    [
        (L.MaxPooling2D(2), (6, 6, 3), 4 * 3 * 3 * 3),
        (L.AveragePooling2D(3, strides=1, padding="same"), (4, 4, 2), 9 * 32),
        (L.MaxPooling1D(3), (9, 2), 3 * 3 * 2),
        (L.AveragePooling3D(2), (4, 4, 4, 1), 8 * 8),
        (L.GlobalAveragePooling2D(), (5, 5, 3), 75),
        (L.GlobalMaxPooling2D(), (5, 5, 3), 75),
        (L.GlobalAveragePooling1D(), (7, 3), 21),
        (L.GlobalMaxPooling3D(), (2, 2, 2, 3), 24),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, L.Layer) else None,
)
def test_pooling(layer, in_shape, expected):
    assert _single(layer, in_shape).flops == expected


@pytest.mark.parametrize(
    "layer, in_shape",
    [
        (L.ZeroPadding2D(2), (4, 4, 3)),
        (L.ZeroPadding1D(1), (4, 3)),
        (L.ZeroPadding3D(1), (2, 2, 2, 3)),
        (L.Cropping2D(1), (4, 4, 3)),
        (L.Cropping1D(1), (4, 3)),
        (L.UpSampling2D(2), (4, 4, 3)),
        (L.UpSampling2D(2, interpolation="bilinear"), (4, 4, 3)),
        (L.UpSampling1D(2), (4, 3)),
        (L.Flatten(), (4, 4, 3)),
        (L.Reshape((16, 3)), (4, 4, 3)),
        (L.Permute((2, 1)), (4, 3)),
        (L.Identity(), (4, 3)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, L.Layer) else None,
)
def test_zero_cost_layers(layer, in_shape):
    row = _single(layer, in_shape)
    assert row.flops == 0 and row.params == 0


@pytest.mark.parametrize(
    "layer_cls, extra_per_input",
    [
        (L.Add, 1),
        (L.Subtract, 1),
        (L.Multiply, 1),
        (L.Maximum, 1),
        (L.Minimum, 1),
    ],
)
def test_merges_count_one_per_extra_input(layer_cls, extra_per_input):
    n_inputs = 2 if layer_cls is L.Subtract else 3
    row = _single(layer_cls(), *[(4, 5)] * n_inputs)
    assert row.flops == (n_inputs - 1) * extra_per_input * 20


def test_average_and_concatenate_and_dot():
    assert _single(L.Average(), (4, 5), (4, 5), (4, 5)).flops == 3 * 20
    assert _single(L.Concatenate(), (4, 5), (4, 2)).flops == 0
    row = _single(L.Dot(axes=2), (3, 6), (4, 6))
    assert row.output_shape == (1, 3, 4)
    assert row.flops == 2 * 6 * 12


def test_broadcasting_multiply_counts_output_elements():
    row = _single(L.Multiply(), (4, 4, 8), (1, 1, 8))
    assert row.flops == 4 * 4 * 8


def test_multi_head_attention():
    layer = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
    q_in = keras.Input((5, 6))
    v_in = keras.Input((7, 8))
    model = keras.Model([q_in, v_in], layer(q_in, v_in))
    row = count_cost(model).layer(layer.name)
    h, tq, tv, dq, dv_in, dk, dv = 2, 5, 7, 6, 8, 3, 4
    expected = (
        2 * tq * dq * h * dk  # query projection
        + 2 * tv * dv_in * h * dk  # key projection (key = value)
        + 2 * tv * dv_in * h * dv  # value projection
        + h * (tq * dk + tv * dk + tv * dv)  # their biases
        + tq * h * dk  # 1 / sqrt(key_dim) scaling
        + 2 * h * tq * tv * dk  # scores
        + 5 * h * tq * tv  # softmax
        + 2 * h * tq * tv * dv  # weighted sum
        + 2 * tq * h * dv * dq  # output projection
        + tq * dq  # its bias
    )
    assert row.flops == expected
    assert row.params == layer.count_params()


def test_time_distributed_dense():
    row = _single(L.TimeDistributed(L.Dense(4)), (6, 3))
    assert row.flops == 6 * (2 * 3 * 4 + 4)


def test_keras_ops_nodes_are_counted():
    x = keras.Input((4, 4, 3))
    y = keras.ops.add(x, 3.0)
    y = keras.ops.multiply(y, x)
    y = keras.ops.reshape(y, (-1, 48))
    y = keras.ops.matmul(y, np.ones((48, 2), "float32"))
    model = keras.Model(x, y)
    cost = count_cost(model)
    assert [r.flops for r in cost.layers] == [48, 48, 0, 2 * 48 * 2]
    assert cost.uncounted == ()
