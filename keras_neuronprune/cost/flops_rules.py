"""Built-in FLOP formulas, one per Keras layer (or operation) type.

Every rule has the signature `rule(layer, input_shapes, output_shapes) -> int`
where the shapes are tuples of ints with the batch dimension set to 1. A
multiply-add counts as 2 FLOPs. The conventions (see docs/cost.md) follow
what TensorFlow's profiler (`tf.compat.v1.profiler`, `float_operation`)
counts for the ops Keras' TensorFlow backend emits, wherever that is a
sensible definition:

- convolution / dense / einsum: 2 per multiply-add, plus 1 per output
  element for the bias;
- batch normalization (inference): 2 per element (scale and shift, i.e. the
  folded form; the per-channel `rsqrt(var + eps) * gamma` is not counted);
- pooling: pool-window size per output element; global pooling: 1 per input
  element;
- merges: 1 per output element per extra input (`Average` adds 1 for the
  division);
- activations: see `ACTIVATION_FLOPS`; reshapes, padding, cropping,
  upsampling, dropout, concatenation, embeddings: 0.
"""

import math

import keras

# FLOPs per output element. The values are what TF's profiler counts for
# Keras' implementation on the TF backend: transcendental primitives (exp,
# sigmoid, tanh, erf, log) and relu-style clamps count 0, the +,-,*,/ and
# comparisons around them count 1 each.
ACTIVATION_FLOPS = {
    "linear": 0,
    "relu": 0,
    "relu6": 0,
    "leaky_relu": 0,
    "elu": 0,
    "selu": 0,
    "sigmoid": 0,
    "tanh": 0,
    "softplus": 0,
    "softsign": 0,
    "exponential": 0,
    "silu": 2,
    "swish": 2,
    "gelu": 4,
    "hard_sigmoid": 2,
    "hard_silu": 3,
    "hard_swish": 3,
    "hard_tanh": 2,
    "hard_shrink": 1,
    "soft_shrink": 4,
    "tanh_shrink": 1,
    "threshold": 1,
    "log_sigmoid": 2,
    "mish": 1,
    "celu": 5,
    "glu": 1,
    "squareplus": 4,
    "sparse_plus": 5,
    "sparse_sigmoid": 4,
    "sparsemax": 8,
    # TF's profiler counts its Softmax kernel as 5 per element (shift, exp,
    # sum, divide); LogSoftmax is not registered there, we count it the same.
    "softmax": 5,
    "log_softmax": 5,
}


class UndefinedShapeError(ValueError):
    """Raised by a rule that needs a dimension the graph leaves undefined."""


def elements(shape):
    """Number of elements of a shape tuple (batch already set to 1).

    Raises:
        UndefinedShapeError: if a dimension is None.
    """
    if any(d is None for d in shape):
        raise UndefinedShapeError(shape)
    return math.prod(shape)


def channel_axis(layer):
    """The channel axis of a layer's tensors (-1 unless channels_first)."""
    if getattr(layer, "data_format", None) == "channels_first":
        return 1
    return -1


def activation_name(fn):
    """The name of an activation function, or None if it has none."""
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        return fn
    return getattr(fn, "__name__", None)


def activation_flops(fn, out_elements):
    """FLOPs of applying activation `fn` to `out_elements` elements.

    Returns None for an activation not in `ACTIVATION_FLOPS`.
    """
    per_element = ACTIVATION_FLOPS.get(activation_name(fn))
    if per_element is None:
        return None
    return per_element * out_elements


class UnknownActivationError(ValueError):
    """Raised by a rule whose layer uses an activation with no FLOP count."""


def _fused_activation(layer, out_elements):
    fn = getattr(layer, "activation", None)
    flops = activation_flops(fn, out_elements)
    if flops is None:
        raise UnknownActivationError(activation_name(fn))
    return flops


def _bias(layer, out_elements):
    return out_elements if getattr(layer, "use_bias", False) else 0


def _spatial_out(layer, output_shape):
    axis = channel_axis(layer) % len(output_shape)
    return elements(output_shape) // output_shape[axis]


def conv_flops(layer, input_shapes, output_shapes):
    cin = input_shapes[0][channel_axis(layer)]
    out = elements(output_shapes[0])
    taps = math.prod(layer.kernel_size) * (cin // layer.groups)
    return 2 * taps * out + _bias(layer, out) + _fused_activation(layer, out)


def conv_transpose_flops(layer, input_shapes, output_shapes):
    # Every input element is multiplied with a whole kernel slice: this is
    # the exact multiply-add count. TF's profiler uses
    # 2 * out_elements * kernel_size * cin / stride**d, equal for 'same'
    # padding, a bit more for 'valid'.
    out = elements(output_shapes[0])
    macs = elements(input_shapes[0]) * math.prod(layer.kernel_size)
    macs *= layer.filters
    return 2 * macs + _bias(layer, out) + _fused_activation(layer, out)


def depthwise_conv_flops(layer, input_shapes, output_shapes):
    out = elements(output_shapes[0])
    taps = math.prod(layer.kernel_size)
    return 2 * taps * out + _bias(layer, out) + _fused_activation(layer, out)


def separable_conv_flops(layer, input_shapes, output_shapes):
    cin = input_shapes[0][channel_axis(layer)]
    out = elements(output_shapes[0])
    spatial = _spatial_out(layer, output_shapes[0])
    mid = cin * layer.depth_multiplier
    depthwise = 2 * math.prod(layer.kernel_size) * mid * spatial
    pointwise = 2 * mid * out
    return (
        depthwise
        + pointwise
        + _bias(layer, out)
        + _fused_activation(layer, out)
    )


def dense_flops(layer, input_shapes, output_shapes):
    out = elements(output_shapes[0])
    return (
        2 * input_shapes[0][-1] * out
        + _bias(layer, out)
        + _fused_activation(layer, out)
    )


def _einsum_letter_sizes(spec, shape, sizes):
    if "..." in spec:
        head, tail = spec.split("...")
        n_ellipsis = len(shape) - len(head) - len(tail)
        letters = list(head) + [f"...{i}" for i in range(n_ellipsis)]
        letters += list(tail)
    else:
        letters = list(spec)
    for letter, dim in zip(letters, shape):
        if dim is not None:
            sizes.setdefault(letter, dim)
    return letters


def einsum_dense_flops(layer, input_shapes, output_shapes):
    # An einsum of two operands costs one multiply-add for every combination
    # of its distinct index letters.
    lhs, out_spec = layer.equation.split("->")
    in_spec, kernel_spec = lhs.split(",")
    sizes = {}
    letters = set(_einsum_letter_sizes(in_spec, input_shapes[0], sizes))
    letters |= set(
        _einsum_letter_sizes(kernel_spec, tuple(layer.kernel.shape), sizes)
    )
    # The output shape can hold None where `output_shape` was given with
    # None: those letters are known from the input.
    out_letters = _einsum_letter_sizes(out_spec, output_shapes[0], sizes)
    letters |= set(out_letters)
    if any(letter not in sizes for letter in letters):
        raise UndefinedShapeError(output_shapes[0])
    macs = math.prod(sizes[letter] for letter in letters)
    out = math.prod(sizes[letter] for letter in out_letters)
    bias = out if getattr(layer, "bias", None) is not None else 0
    return 2 * macs + bias + _fused_activation(layer, out)


def multi_head_attention_flops(layer, input_shapes, output_shapes):
    query = input_shapes[0]
    value = input_shapes[1] if len(input_shapes) > 1 else query
    key = input_shapes[2] if len(input_shapes) > 2 else value
    heads = layer.num_heads
    key_dim = layer.key_dim
    value_dim = layer.value_dim or key_dim
    rank = len(query)
    axes = layer.get_config().get("attention_axes")
    if axes is None:
        axes = tuple(range(1, rank - 1))
    axes = tuple(a % rank for a in axes)
    q_att = math.prod(query[a] for a in axes)
    k_att = math.prod(key[a] for a in axes)
    t_q = math.prod(query[1:-1])
    t_k = math.prod(key[1:-1])
    t_v = math.prod(value[1:-1])
    outer = t_q // q_att
    bias = 1 if layer.get_config().get("use_bias", True) else 0
    out_dim = output_shapes[0][-1]
    flops = 2 * t_q * query[-1] * heads * key_dim  # query projection
    flops += 2 * t_k * key[-1] * heads * key_dim  # key projection
    flops += 2 * t_v * value[-1] * heads * value_dim  # value projection
    flops += bias * heads * (t_q * key_dim + t_k * key_dim + t_v * value_dim)
    flops += t_q * heads * key_dim  # query scaling by 1/sqrt(key_dim)
    scores = heads * outer * q_att * k_att
    flops += 2 * scores * key_dim  # query . key
    flops += ACTIVATION_FLOPS["softmax"] * scores
    flops += 2 * scores * value_dim  # attention-weighted sum of values
    flops += 2 * t_q * heads * value_dim * out_dim  # output projection
    flops += bias * t_q * out_dim
    return flops


def batch_normalization_flops(layer, input_shapes, output_shapes):
    return 2 * elements(output_shapes[0])


def _norm_flops(layer, output_shapes):
    # Mean (1), variance as mean of squared differences (3), normalize with
    # (x - mean) * inv_std (2), then the optional affine scale and shift.
    per_element = 6
    per_element += 1 if getattr(layer, "scale", False) else 0
    per_element += 1 if getattr(layer, "center", False) else 0
    return per_element * elements(output_shapes[0])


def layer_normalization_flops(layer, input_shapes, output_shapes):
    if getattr(layer, "rms_scaling", False):
        # mean(x^2) (2), x * rsqrt(.) (1), scale (1).
        return 4 * elements(output_shapes[0])
    return _norm_flops(layer, output_shapes)


def group_normalization_flops(layer, input_shapes, output_shapes):
    return _norm_flops(layer, output_shapes)


def rms_normalization_flops(layer, input_shapes, output_shapes):
    return 4 * elements(output_shapes[0])


def unit_normalization_flops(layer, input_shapes, output_shapes):
    # square (1), sum (1), multiply by the inverse norm (1).
    return 3 * elements(output_shapes[0])


def two_per_element(layer, input_shapes, output_shapes):
    """Rescaling (x * scale + offset) and Normalization ((x - m) / s)."""
    return 2 * elements(output_shapes[0])


def one_per_element(layer, input_shapes, output_shapes):
    return elements(output_shapes[0])


def zero_flops(layer, input_shapes, output_shapes):
    return 0


def activation_layer_flops(layer, input_shapes, output_shapes):
    return _fused_activation(layer, elements(output_shapes[0]))


def softmax_flops(layer, input_shapes, output_shapes):
    return ACTIVATION_FLOPS["softmax"] * elements(output_shapes[0])


def prelu_flops(layer, input_shapes, output_shapes):
    # relu(x) - alpha * relu(-x): two negations, a multiply and an add, as
    # the TF backend computes it.
    return 4 * elements(output_shapes[0])


def pooling_flops(layer, input_shapes, output_shapes):
    return math.prod(layer.pool_size) * elements(output_shapes[0])


def global_pooling_flops(layer, input_shapes, output_shapes):
    return elements(input_shapes[0])


def merge_flops(layer, input_shapes, output_shapes):
    return (len(input_shapes) - 1) * elements(output_shapes[0])


def average_flops(layer, input_shapes, output_shapes):
    return len(input_shapes) * elements(output_shapes[0])


def dot_flops(layer, input_shapes, output_shapes):
    axes = layer.axes
    if isinstance(axes, (list, tuple)):
        axes = axes[0]
    depth = input_shapes[0][axes]
    return 2 * depth * elements(output_shapes[0])


def time_distributed_flops(layer, input_shapes, output_shapes):
    from keras_neuronprune.cost.flops_registry import get_flops_rule

    inner = layer.layer
    rule = get_flops_rule(inner)
    if rule is None:
        return None
    steps = input_shapes[0][1]
    inner_in = [(1,) + tuple(s[2:]) for s in input_shapes]
    inner_out = [(1,) + tuple(s[2:]) for s in output_shapes]
    flops = rule(inner, inner_in, inner_out)
    return None if flops is None else steps * flops


def matmul_op_flops(op, input_shapes, output_shapes):
    depth = input_shapes[0][-1] if len(input_shapes[0]) > 1 else 1
    return 2 * depth * elements(output_shapes[0])


def layer_scale_flops(layer, input_shapes, output_shapes):
    """ConvNeXt's LayerScale: x * gamma."""
    return elements(output_shapes[0])


def custom_scale_flops(layer, input_shapes, output_shapes):
    """InceptionResNetV2's CustomScaleLayer: x0 + x1 * scale."""
    return 2 * elements(output_shapes[0])


L = keras.layers

_ZERO_COST_LAYERS = (
    L.InputLayer,
    L.Flatten,
    L.Reshape,
    L.Permute,
    L.RepeatVector,
    L.Concatenate,
    L.ZeroPadding1D,
    L.ZeroPadding2D,
    L.ZeroPadding3D,
    L.Cropping1D,
    L.Cropping2D,
    L.Cropping3D,
    L.UpSampling1D,
    L.UpSampling2D,
    L.UpSampling3D,
    L.Resizing,
    L.CenterCrop,
    L.Dropout,
    L.SpatialDropout1D,
    L.SpatialDropout2D,
    L.SpatialDropout3D,
    L.GaussianDropout,
    L.GaussianNoise,
    L.AlphaDropout,
    L.ActivityRegularization,
    L.Identity,
    L.Masking,
    L.Embedding,
    L.StringLookup,
    L.IntegerLookup,
    L.Hashing,
    L.HashedCrossing,
    L.CategoryEncoding,
    L.Discretization,
    L.TextVectorization,
    L.ReLU,
    L.LeakyReLU,
    L.ELU,
)

# Data-augmentation layers are the identity at inference.
_AUGMENTATION_LAYERS = tuple(
    getattr(L, name)
    for name in dir(L)
    if name.startswith("Random")
    or name in ("AugMix", "CutMix", "MixUp", "RandAugment")
)

BUILTIN_RULES = {
    L.Conv1D: conv_flops,
    L.Conv2D: conv_flops,
    L.Conv3D: conv_flops,
    L.Conv1DTranspose: conv_transpose_flops,
    L.Conv2DTranspose: conv_transpose_flops,
    L.Conv3DTranspose: conv_transpose_flops,
    L.DepthwiseConv1D: depthwise_conv_flops,
    L.DepthwiseConv2D: depthwise_conv_flops,
    L.SeparableConv1D: separable_conv_flops,
    L.SeparableConv2D: separable_conv_flops,
    L.Dense: dense_flops,
    L.EinsumDense: einsum_dense_flops,
    L.MultiHeadAttention: multi_head_attention_flops,
    L.BatchNormalization: batch_normalization_flops,
    L.LayerNormalization: layer_normalization_flops,
    L.GroupNormalization: group_normalization_flops,
    L.RMSNormalization: rms_normalization_flops,
    L.UnitNormalization: unit_normalization_flops,
    L.Rescaling: two_per_element,
    L.Normalization: two_per_element,
    L.Activation: activation_layer_flops,
    L.Softmax: softmax_flops,
    L.PReLU: prelu_flops,
    L.MaxPooling1D: pooling_flops,
    L.MaxPooling2D: pooling_flops,
    L.MaxPooling3D: pooling_flops,
    L.AveragePooling1D: pooling_flops,
    L.AveragePooling2D: pooling_flops,
    L.AveragePooling3D: pooling_flops,
    L.GlobalAveragePooling1D: global_pooling_flops,
    L.GlobalAveragePooling2D: global_pooling_flops,
    L.GlobalAveragePooling3D: global_pooling_flops,
    L.GlobalMaxPooling1D: global_pooling_flops,
    L.GlobalMaxPooling2D: global_pooling_flops,
    L.GlobalMaxPooling3D: global_pooling_flops,
    L.AdaptiveAveragePooling1D: global_pooling_flops,
    L.AdaptiveAveragePooling2D: global_pooling_flops,
    L.AdaptiveAveragePooling3D: global_pooling_flops,
    L.AdaptiveMaxPooling1D: global_pooling_flops,
    L.AdaptiveMaxPooling2D: global_pooling_flops,
    L.AdaptiveMaxPooling3D: global_pooling_flops,
    L.Add: merge_flops,
    L.Subtract: merge_flops,
    L.Multiply: merge_flops,
    L.Maximum: merge_flops,
    L.Minimum: merge_flops,
    L.Average: average_flops,
    L.Dot: dot_flops,
    L.TimeDistributed: time_distributed_flops,
}
BUILTIN_RULES.update({cls: zero_flops for cls in _ZERO_COST_LAYERS})
BUILTIN_RULES.update({cls: zero_flops for cls in _AUGMENTATION_LAYERS})

# Helper layers of keras.applications and the keras.ops operations that a
# functional model records as graph nodes. They are private classes, so
# they are matched by qualified name instead of imported.
_OPS = "keras.src.ops."
BUILTIN_RULES.update(
    {
        "keras.src.applications.convnext.LayerScale": layer_scale_flops,
        "keras.src.applications.inception_resnet_v2.CustomScaleLayer": (
            custom_scale_flops
        ),
        "keras.src.applications.convnext.StochasticDepth": zero_flops,
    }
)
# A binary keras.ops call is one op per output element, whether its second
# operand is a tensor or a Python number (`x + 3.0`).
BUILTIN_RULES.update(
    {
        _OPS + "numpy." + name: one_per_element
        for name in (
            "Add",
            "Subtract",
            "Multiply",
            "Divide",
            "TrueDivide",
            "Maximum",
            "Minimum",
            "Power",
        )
    }
)
BUILTIN_RULES.update(
    {
        _OPS + "numpy.Matmul": matmul_op_flops,
        _OPS + "numpy.Mean": global_pooling_flops,
        _OPS + "numpy.Sum": global_pooling_flops,
    }
)
BUILTIN_RULES.update(
    {
        _OPS + "numpy." + name: zero_flops
        for name in (
            "Reshape",
            "Transpose",
            "ExpandDims",
            "Squeeze",
            "Concatenate",
            "Stack",
            "Split",
            "GetItem",
            "Take",
            "Flip",
            "Roll",
            "Pad",
            "Tile",
            "Repeat",
            "Ravel",
            "ZerosLike",
            "OnesLike",
        )
    }
)
BUILTIN_RULES.update(
    {
        _OPS + "core.Cast": zero_flops,
        _OPS + "core.SliceUpdate": zero_flops,
        _OPS + "core.Slice": zero_flops,
        _OPS + "core.StopGradient": zero_flops,
    }
)


def _activation_op_rule(name):
    def rule(op, input_shapes, output_shapes):
        return ACTIVATION_FLOPS[name] * elements(output_shapes[0])

    return rule


# keras.ops activations recorded as graph nodes, e.g. `keras.ops.relu(x)`.
_ACTIVATION_OPS = {
    "Relu": "relu",
    "Relu6": "relu6",
    "LeakyRelu": "leaky_relu",
    "Elu": "elu",
    "Selu": "selu",
    "Celu": "celu",
    "Sigmoid": "sigmoid",
    "LogSigmoid": "log_sigmoid",
    "HardSigmoid": "hard_sigmoid",
    "Silu": "silu",
    "HardSilu": "hard_silu",
    "Gelu": "gelu",
    "Glu": "glu",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "HardTanh": "hard_tanh",
    "HardShrink": "hard_shrink",
    "SoftShrink": "soft_shrink",
    "TanhShrink": "tanh_shrink",
    "Threshold": "threshold",
    "Sparsemax": "sparsemax",
    "SparsePlus": "sparse_plus",
    "SparseSigmoid": "sparse_sigmoid",
    "Squareplus": "squareplus",
}
BUILTIN_RULES.update(
    {
        _OPS + "nn." + cls_name: _activation_op_rule(name)
        for cls_name, name in _ACTIVATION_OPS.items()
    }
)
BUILTIN_RULES.update(
    {
        _OPS + "numpy." + name: zero_flops
        for name in ("Tanh", "Exp", "Sqrt", "Abs")
    }
)
BUILTIN_RULES[_OPS + "numpy.Negative"] = one_per_element
BUILTIN_RULES[_OPS + "numpy.Clip"] = two_per_element
BUILTIN_RULES[_OPS + "numpy.Log"] = one_per_element
BUILTIN_RULES[_OPS + "numpy.Reciprocal"] = one_per_element
