"""Small functional models, one per construct the channel graph must handle.

Every model keeps each construct between a producer (a layer that creates
channels) and a consumer (a layer that mixes them), so the construct's
channels form a prunable group that reaches neither a model input nor a
model output. Layer names are fixed so tests can look members up.
"""

import keras
import numpy as np

L = keras.layers


def randomize_weights(model, rng=0):
    """Gives biases, BN statistics and similar weights random values.

    Fresh layers have zero biases and identity BatchNormalization, which would
    hide a wrongly sliced bias or statistic. Kernels keep their initial
    values. The model is changed in place.

    Args:
        model: a Keras model.
        rng: a `numpy.random.Generator` or an int seed.

    Returns:
        `model`.
    """
    rng = np.random.default_rng(rng)
    for w in model.weights:
        name = w.path.split("/")[-1]
        shape = tuple(w.shape)
        if not np.issubdtype(np.dtype(w.dtype), np.floating):
            continue
        if name in ("moving_variance", "gamma", "scale"):
            w.assign(rng.uniform(0.5, 1.5, shape).astype(w.dtype))
        elif name in ("bias", "beta", "moving_mean", "alpha"):
            w.assign((0.3 * rng.standard_normal(shape)).astype(w.dtype))
    return model


def _finish(inputs, outputs, name):
    return randomize_weights(keras.Model(inputs, outputs, name=name))


def conv1d():
    x = keras.Input((16, 3))
    y = L.Conv1D(8, 3, padding="same", name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Conv1D(6, 3, name="mid")(y)
    y = L.Conv1D(4, 1, name="c")(y)
    return _finish(x, y, "conv1d")


def conv2d():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(6, 3, strides=2, name="mid")(y)
    y = L.BatchNormalization(name="bn2")(y)
    y = L.Activation("swish", name="swish")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "conv2d")


def conv3d():
    x = keras.Input((6, 6, 6, 2))
    y = L.Conv3D(6, 3, padding="same", name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Conv3D(4, 1, name="c")(y)
    return _finish(x, y, "conv3d")


def conv1d_transpose():
    x = keras.Input((8, 3))
    y = L.Conv1DTranspose(8, 3, strides=2, name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Conv1DTranspose(6, 3, padding="same", name="mid")(y)
    y = L.Conv1D(4, 1, name="c")(y)
    return _finish(x, y, "conv1d_transpose")


def conv2d_transpose():
    x = keras.Input((6, 6, 3))
    y = L.Conv2DTranspose(8, 3, strides=2, padding="same", name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2DTranspose(6, 3, name="mid")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "conv2d_transpose")


def conv3d_transpose():
    x = keras.Input((4, 4, 4, 2))
    y = L.Conv3DTranspose(6, 3, strides=2, name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Conv3D(3, 1, name="c")(y)
    return _finish(x, y, "conv3d_transpose")


def depthwise_conv1d():
    x = keras.Input((12, 3))
    y = L.Conv1D(8, 1, name="p")(x)
    y = L.DepthwiseConv1D(3, padding="same", name="dw")(y)
    y = L.ReLU(name="relu")(y)
    y = L.DepthwiseConv1D(3, depth_multiplier=3, name="dw3")(y)
    y = L.Conv1D(4, 1, name="c")(y)
    return _finish(x, y, "depthwise_conv1d")


def depthwise_conv2d():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 1, name="p")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(6.0, name="relu6")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "depthwise_conv2d")


def depthwise_conv2d_multiplier():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(6, 1, name="p")(x)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(y)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "depthwise_conv2d_multiplier")


def separable_conv1d():
    x = keras.Input((12, 3))
    y = L.Conv1D(8, 1, name="p")(x)
    y = L.SeparableConv1D(10, 3, depth_multiplier=2, name="sep")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv1D(4, 1, name="c")(y)
    return _finish(x, y, "separable_conv1d")


def separable_conv2d():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 1, name="p")(x)
    y = L.SeparableConv2D(10, 3, padding="same", name="sep")(y)
    y = L.ReLU(name="relu")(y)
    y = L.SeparableConv2D(6, 3, depth_multiplier=2, name="sep2")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "separable_conv2d")


def grouped_conv1d():
    x = keras.Input((10, 3))
    y = L.Conv1D(8, 1, name="p")(x)
    y = L.Conv1D(8, 3, groups=2, name="g")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv1D(4, 1, name="c")(y)
    return _finish(x, y, "grouped_conv1d")


def grouped_conv2d():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 1, name="p")(x)
    y = L.Conv2D(12, 3, groups=4, name="g")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "grouped_conv2d")


def grouped_conv3d():
    x = keras.Input((4, 4, 4, 2))
    y = L.Conv3D(4, 1, name="p")(x)
    y = L.Conv3D(6, 3, groups=2, name="g")(y)
    y = L.Conv3D(2, 1, name="c")(y)
    return _finish(x, y, "grouped_conv3d")


def dense_2d():
    x = keras.Input((10,))
    y = L.Dense(16, name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Dense(12, activation="tanh", name="mid")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "dense_2d")


def dense_nd():
    x = keras.Input((3, 4, 6))
    y = L.Dense(8, activation="relu", name="p")(x)
    y = L.Dense(6, name="mid")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "dense_nd")


def einsum_dense():
    x = keras.Input((5, 10))
    y = L.EinsumDense("abc,cd->abd", (5, 16), bias_axes="d", name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.EinsumDense("abc,cd->abd", (5, 4), name="c")(y)
    return _finish(x, y, "einsum_dense")


def activations():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.PReLU(shared_axes=[1, 2], name="prelu")(y)
    y = L.LeakyReLU(0.2, name="leaky")(y)
    y = L.ELU(name="elu")(y)
    y = L.ReLU(max_value=6.0, negative_slope=0.1, name="relu")(y)
    y = L.Activation("gelu", name="gelu")(y)
    y = L.Softmax(axis=1, name="softmax_spatial")(y)
    y = L.PReLU(name="prelu_full")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "activations")


def regularization():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.Dropout(0.5, name="dropout")(y)
    y = L.SpatialDropout2D(0.3, name="spatial_dropout")(y)
    y = L.GaussianNoise(0.2, name="noise")(y)
    y = L.GaussianDropout(0.2, name="gdropout")(y)
    y = L.AlphaDropout(0.2, name="adropout")(y)
    y = L.ActivityRegularization(l1=0.01, name="actreg")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "regularization")


def pooling_1d():
    x = keras.Input((16, 3))
    y = L.Conv1D(8, 3, padding="same", name="p")(x)
    y = L.MaxPooling1D(2, name="maxpool")(y)
    y = L.AveragePooling1D(2, padding="same", name="avgpool")(y)
    y = L.SpatialDropout1D(0.2, name="sdrop")(y)
    a = L.GlobalAveragePooling1D(keepdims=True, name="gap_keep")(y)
    a = L.Conv1D(8, 1, name="se")(a)
    y = L.Multiply(name="mul")([y, a])
    y = L.GlobalMaxPooling1D(name="gmp")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "pooling_1d")


def pooling_2d():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.MaxPooling2D(2, name="maxpool")(y)
    y = L.AveragePooling2D(2, strides=1, padding="same", name="avgpool")(y)
    a = L.GlobalMaxPooling2D(keepdims=True, name="gmp_keep")(y)
    y = L.Add(name="add")([y, a])
    y = L.Conv2D(6, 1, name="mid")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "pooling_2d")


def pooling_3d():
    x = keras.Input((4, 4, 4, 2))
    y = L.Conv3D(6, 1, name="p")(x)
    y = L.MaxPooling3D(2, name="maxpool")(y)
    y = L.AveragePooling3D(1, name="avgpool")(y)
    y = L.SpatialDropout3D(0.2, name="sdrop")(y)
    a = L.GlobalAveragePooling3D(keepdims=True, name="gap_keep")(y)
    y = L.Subtract(name="sub")([y, a])
    y = L.GlobalMaxPooling3D(name="gmp")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "pooling_3d")


def padding_cropping_upsampling_1d():
    x = keras.Input((10, 3))
    y = L.Conv1D(8, 3, name="p")(x)
    y = L.ZeroPadding1D(2, name="pad")(y)
    y = L.Cropping1D((1, 2), name="crop")(y)
    y = L.UpSampling1D(2, name="up")(y)
    y = L.Conv1D(4, 1, name="c")(y)
    return _finish(x, y, "padding_cropping_upsampling_1d")


def padding_cropping_upsampling_2d():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, name="p")(x)
    y = L.ZeroPadding2D(((1, 2), (0, 1)), name="pad")(y)
    y = L.Cropping2D(((1, 0), (2, 1)), name="crop")(y)
    y = L.UpSampling2D(2, interpolation="bilinear", name="up")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "padding_cropping_upsampling_2d")


def padding_cropping_upsampling_3d():
    x = keras.Input((4, 4, 4, 2))
    y = L.Conv3D(6, 1, name="p")(x)
    y = L.ZeroPadding3D(1, name="pad")(y)
    y = L.Cropping3D(1, name="crop")(y)
    y = L.UpSampling3D(2, name="up")(y)
    y = L.Conv3D(3, 1, name="c")(y)
    return _finish(x, y, "padding_cropping_upsampling_3d")


def merges():
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(8, 3, padding="same", name="pa")(x)
    b = L.Conv2D(8, 1, name="pb")(x)
    c = L.Conv2D(8, 3, padding="same", name="pc")(x)
    y = L.Add(name="add")([a, b, c])
    y = L.Subtract(name="sub")([y, a])
    y = L.Multiply(name="mul")([y, b])
    y = L.Average(name="avg")([y, c])
    y = L.Maximum(name="max")([y, a])
    y = L.Minimum(name="min")([y, b])
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "merges")


def squeeze_excitation():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.ReLU(name="relu")(y)
    s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(y)
    s = L.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    z = L.Multiply(name="excite")([y, s])
    z = L.Add(name="residual")([z, y])
    z = L.Conv2D(4, 1, name="c")(z)
    return _finish(x, z, "squeeze_excitation")


def squeeze_excitation_reshape():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    s = L.GlobalAveragePooling2D(name="squeeze")(y)
    s = L.Reshape((1, 1, 8), name="reshape")(s)
    s = L.Conv2D(3, 1, activation="swish", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    z = L.Multiply(name="excite")([s, y])
    z = L.Conv2D(4, 1, name="c")(z)
    return _finish(x, z, "squeeze_excitation_reshape")


def concatenate():
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(4, 3, padding="same", name="pa")(x)
    b = L.Conv2D(6, 1, name="pb")(x)
    y = L.Concatenate(name="concat")([a, b])
    y = L.BatchNormalization(name="bn")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "concatenate")


def concatenate_self():
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(4, 3, padding="same", name="pa")(x)
    y = L.Concatenate(name="concat")([a, a])
    y = L.Conv2D(3, 1, name="c")(y)
    return _finish(x, y, "concatenate_self")


def concatenate_dense_block():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(4, 3, padding="same", name="stem")(x)
    for i in range(3):
        z = L.BatchNormalization(name=f"bn{i}")(y)
        z = L.ReLU(name=f"relu{i}")(z)
        z = L.Conv2D(3, 3, padding="same", name=f"grow{i}")(z)
        y = L.Concatenate(name=f"concat{i}")([y, z])
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "concatenate_dense_block")


def concatenate_other_axis():
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(6, 3, padding="same", name="pa")(x)
    b = L.Conv2D(6, 1, name="pb")(x)
    y = L.Concatenate(axis=1, name="concat_h")([a, b])
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "concatenate_other_axis")


def flatten_dense():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(4, 3, strides=2, padding="same", name="p")(x)
    y = L.ReLU(name="relu")(y)
    y = L.Flatten(name="flatten")(y)
    y = L.Dense(8, activation="relu", name="mid")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "flatten_dense")


def rescaling_normalization():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.Rescaling(0.5, offset=0.25, name="rescale")(y)
    y = L.Normalization(
        mean=np.linspace(-1.0, 1.0, 8),
        variance=np.linspace(0.5, 2, 8),
        name="norm",
    )(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "rescaling_normalization")


def rescaling_per_channel():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = L.Rescaling(np.linspace(0.5, 1.5, 8), name="rescale")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "rescaling_per_channel")


def _inner_block(channels=8, name="inner"):
    x = keras.Input((None, None, channels))
    y = L.Conv2D(2 * channels, 1, activation="relu", name="expand")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.Conv2D(channels, 1, name="project")(y)
    y = L.Add(name="add")([x, y])
    return keras.Model(x, y, name=name)


def nested_model():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = _inner_block(8, "inner")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "nested_model")


def nested_model_called_twice():
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    inner = _inner_block(8, "inner")
    y = inner(y)
    y = L.ReLU(name="relu")(y)
    y = inner(y)
    y = L.Conv2D(4, 1, name="c")(y)
    return _finish(x, y, "nested_model_called_twice")


def sequential():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            L.Conv2D(8, 3, name="p"),
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu"),
            L.MaxPooling2D(name="pool"),
            L.Conv2D(6, 3, padding="same", name="mid"),
            L.Flatten(name="flatten"),
            L.Dense(10, activation="relu", name="fc"),
            L.Dense(3, name="c"),
        ],
        name="sequential",
    )
    return randomize_weights(model)


def nested_sequential():
    block = keras.Sequential(
        [
            keras.Input((None, None, 8)),
            L.Conv2D(12, 1, name="expand"),
            L.ReLU(name="relu"),
            L.Conv2D(8, 1, name="project"),
        ],
        name="block",
    )
    outer = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            L.Conv2D(8, 3, name="p"),
            block,
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(3, name="c"),
        ],
        name="outer",
    )
    x = keras.Input((6, 6, 3))
    y = outer(x)
    y = L.Dense(2, name="head")(y)
    return _finish(x, y, "nested_sequential")


def shared_layers():
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(4, 3, padding="same", name="pa")(x)
    b = L.Conv2D(4, 1, name="pb")(x)
    shared = L.Conv2D(8, 3, padding="same", name="shared")
    y = L.Add(name="add")([shared(a), shared(b)])
    y = L.ReLU(name="relu")(y)
    dense = L.Dense(6, name="shared_dense")
    z = L.Concatenate(name="concat")([dense(y), dense(L.ReLU(name="r2")(y))])
    z = L.Conv2D(3, 1, name="c")(z)
    return _finish(x, z, "shared_layers")


def residual_network():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="stem")(x)
    for i in range(2):
        z = L.Conv2D(12, 1, activation="relu", name=f"b{i}_expand")(y)
        z = L.DepthwiseConv2D(3, padding="same", name=f"b{i}_dw")(z)
        z = L.BatchNormalization(name=f"b{i}_bn")(z)
        z = L.Conv2D(8, 1, name=f"b{i}_project")(z)
        y = L.Add(name=f"b{i}_add")([y, z])
    y = L.Conv2D(10, 3, strides=2, name="down")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dropout(0.2, name="drop")(y)
    y = L.Dense(3, name="c")(y)
    return _finish(x, y, "residual_network")


def multiple_inputs_outputs():
    xa = keras.Input((6, 6, 3), name="image")
    xb = keras.Input((5,), name="vector")
    a = L.Conv2D(8, 3, name="pa")(xa)
    a = L.GlobalAveragePooling2D(name="gap")(a)
    b = L.Dense(6, activation="relu", name="pb")(xb)
    y = L.Concatenate(name="concat")([a, b])
    y = L.Dense(10, activation="relu", name="mid")(y)
    out1 = L.Dense(3, name="out1")(y)
    out2 = L.Dense(2, name="out2")(y)
    return _finish([xa, xb], [out1, out2], "multiple_inputs_outputs")


CATALOGUE = {
    fn.__name__: fn
    for fn in (
        conv1d,
        conv2d,
        conv3d,
        conv1d_transpose,
        conv2d_transpose,
        conv3d_transpose,
        depthwise_conv1d,
        depthwise_conv2d,
        depthwise_conv2d_multiplier,
        separable_conv1d,
        separable_conv2d,
        grouped_conv1d,
        grouped_conv2d,
        grouped_conv3d,
        dense_2d,
        dense_nd,
        einsum_dense,
        activations,
        regularization,
        pooling_1d,
        pooling_2d,
        pooling_3d,
        padding_cropping_upsampling_1d,
        padding_cropping_upsampling_2d,
        padding_cropping_upsampling_3d,
        merges,
        squeeze_excitation,
        squeeze_excitation_reshape,
        concatenate,
        concatenate_self,
        concatenate_dense_block,
        concatenate_other_axis,
        flatten_dense,
        rescaling_normalization,
        rescaling_per_channel,
        nested_model,
        nested_model_called_twice,
        sequential,
        nested_sequential,
        shared_layers,
        residual_network,
        multiple_inputs_outputs,
    )
}
"""Name -> builder of every catalogue model (each builder takes no args)."""
