"""FLOP formulas of the Keras layers and ops, given to their layer handlers.

Every formula has the signature `rule(layer, input_shapes, output_shapes) ->
int` where the shapes are tuples of ints with the batch dimension set to 1.
A multiply-add counts as 2 FLOPs. The handler of a layer class carries its
formula (`LayerHandler.flops_rule`, see `builtin_handlers.py` and
`ops_handlers.py` for which class gets which), and `count_cost` asks the
handler. The conventions (see docs/cost.md) follow what TensorFlow's
profiler (`tf.compat.v1.profiler`, `float_operation`) counts for the ops
Keras' TensorFlow backend emits, wherever that is a sensible definition:

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

This module imports nothing of the package but the handler lookup (for
`TimeDistributed`), so `graph/` never imports `cost/`.
"""

import functools
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
    # The tanh form 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))
    # counts 7 in TF's profiler (Pow counts 1, Tanh 0).
    "gelu_approximate": 7,
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


class UnknownActivationError(ValueError):
    """Raised by a rule whose layer uses an activation with no FLOP count."""


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


def _gelu_name(approximate):
    return "gelu_approximate" if approximate else "gelu"


def activation_name(fn):
    """The name of an activation function, or None if it has none.

    `gelu` is named `"gelu_approximate"` where it computes the tanh form:
    `keras.ops.gelu` (whose `approximate` defaults to True), a
    `functools.partial` of either gelu with `approximate=True`, and
    keras-hub's `gelu_approximate`.
    """
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        return fn
    if isinstance(fn, functools.partial) and not fn.args:
        name = activation_name(fn.func)
        if name in ("gelu", "gelu_approximate"):
            default = name == "gelu_approximate"
            return _gelu_name(fn.keywords.get("approximate", default))
        return name if not fn.keywords else None
    if fn is keras.ops.gelu:
        return "gelu_approximate"
    return getattr(fn, "__name__", None)


def activation_flops(fn, out_elements):
    """FLOPs of applying activation `fn` to `out_elements` elements.

    Returns None for an activation not in `ACTIVATION_FLOPS`.
    """
    per_element = ACTIVATION_FLOPS.get(activation_name(fn))
    if per_element is None:
        return None
    return per_element * out_elements


def _fused_activation(layer, out_elements):
    fn = getattr(layer, "activation", None)
    flops = activation_flops(fn, out_elements)
    if flops is None:
        raise UnknownActivationError(activation_name(fn))
    return flops


def _bias_and_activation(layer, out, has_bias=None):
    """The `out` bias additions (if any) plus the fused activation."""
    if has_bias is None:
        has_bias = getattr(layer, "use_bias", False)
    return (out if has_bias else 0) + _fused_activation(layer, out)


def _spatial_out(layer, output_shape):
    axis = channel_axis(layer) % len(output_shape)
    return elements(output_shape) // output_shape[axis]


def per_output_element(per_element, name):
    """A rule counting `per_element` FLOPs for every output element.

    Args:
        per_element: FLOPs per element of the first output.
        name: the rule's `__name__` (shown when rules are listed).

    Returns:
        A rule `rule(layer, input_shapes, output_shapes) -> int`.
    """

    def rule(layer, input_shapes, output_shapes):
        return per_element * elements(output_shapes[0])

    rule.__name__ = rule.__qualname__ = name
    return rule


def activation_op_rule(name):
    """The rule of a `keras.ops` activation (`keras.ops.relu(x)`).

    The `gelu` op reads its `approximate` flag (True by default in
    `keras.ops.gelu`, unlike `keras.activations.gelu`).
    """
    if name != "gelu":
        return per_output_element(ACTIVATION_FLOPS[name], f"{name}_op_flops")

    def gelu_op_flops(op, input_shapes, output_shapes):
        per_element = ACTIVATION_FLOPS[
            _gelu_name(getattr(op, "approximate", True))
        ]
        return per_element * elements(output_shapes[0])

    return gelu_op_flops


def zero_flops(layer, input_shapes, output_shapes):
    """Layers that only move data (reshape, pad, dropout...): 0."""
    return 0


one_per_element = per_output_element(1, "one_per_element")
# Rescaling (x * scale + offset) and Normalization ((x - m) / s).
two_per_element = per_output_element(2, "two_per_element")
batch_normalization_flops = per_output_element(2, "batch_normalization_flops")
# mean(x^2) (2), x * rsqrt(.) (1), scale (1).
rms_normalization_flops = per_output_element(4, "rms_normalization_flops")
# square (1), sum (1), multiply by the inverse norm (1).
unit_normalization_flops = per_output_element(3, "unit_normalization_flops")
softmax_flops = per_output_element(ACTIVATION_FLOPS["softmax"], "softmax_flops")
# relu(x) - alpha * relu(-x): two negations, a multiply and an add, as the
# TF backend computes it.
prelu_flops = per_output_element(4, "prelu_flops")
# ConvNeXt's LayerScale: x * gamma.
layer_scale_flops = per_output_element(1, "layer_scale_flops")
# InceptionResNetV2's CustomScaleLayer: x0 + x1 * scale.
custom_scale_flops = per_output_element(2, "custom_scale_flops")


def conv_flops(layer, input_shapes, output_shapes):
    cin = input_shapes[0][channel_axis(layer)]
    out = elements(output_shapes[0])
    taps = math.prod(layer.kernel_size) * (cin // layer.groups)
    return 2 * taps * out + _bias_and_activation(layer, out)


def conv_transpose_flops(layer, input_shapes, output_shapes):
    # Every input element is multiplied with a whole kernel slice: this is
    # the exact multiply-add count. TF's profiler uses
    # 2 * out_elements * kernel_size * cin / stride**d, equal for 'same'
    # padding, a bit more for 'valid'.
    out = elements(output_shapes[0])
    macs = elements(input_shapes[0]) * math.prod(layer.kernel_size)
    macs *= layer.filters
    return 2 * macs + _bias_and_activation(layer, out)


def depthwise_conv_flops(layer, input_shapes, output_shapes):
    out = elements(output_shapes[0])
    taps = math.prod(layer.kernel_size)
    return 2 * taps * out + _bias_and_activation(layer, out)


def separable_conv_flops(layer, input_shapes, output_shapes):
    cin = input_shapes[0][channel_axis(layer)]
    out = elements(output_shapes[0])
    spatial = _spatial_out(layer, output_shapes[0])
    mid = cin * layer.depth_multiplier
    depthwise = 2 * math.prod(layer.kernel_size) * mid * spatial
    pointwise = 2 * mid * out
    return depthwise + pointwise + _bias_and_activation(layer, out)


def dense_flops(layer, input_shapes, output_shapes):
    out = elements(output_shapes[0])
    return 2 * input_shapes[0][-1] * out + _bias_and_activation(layer, out)


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
    has_bias = getattr(layer, "bias", None) is not None
    return 2 * macs + _bias_and_activation(layer, out, has_bias)


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


def _norm_flops(layer, output_shapes):
    # Mean (1), variance as mean of squared differences (3), normalize with
    # (x - mean) * inv_std (2), then the optional affine scale and shift.
    per_element = 6
    per_element += 1 if getattr(layer, "scale", False) else 0
    per_element += 1 if getattr(layer, "center", False) else 0
    return per_element * elements(output_shapes[0])


def layer_normalization_flops(layer, input_shapes, output_shapes):
    if getattr(layer, "rms_scaling", False):
        return rms_normalization_flops(layer, input_shapes, output_shapes)
    return _norm_flops(layer, output_shapes)


def group_normalization_flops(layer, input_shapes, output_shapes):
    return _norm_flops(layer, output_shapes)


def activation_layer_flops(layer, input_shapes, output_shapes):
    return _fused_activation(layer, elements(output_shapes[0]))


def pooling_flops(layer, input_shapes, output_shapes):
    return math.prod(layer.pool_size) * elements(output_shapes[0])


def global_pooling_flops(layer, input_shapes, output_shapes):
    """Global pooling and reductions (`ops.mean`, `ops.sum`): 1 per input."""
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


def matmul_op_flops(op, input_shapes, output_shapes):
    depth = input_shapes[0][-1] if len(input_shapes[0]) > 1 else 1
    return 2 * depth * elements(output_shapes[0])


def time_distributed_flops(layer, input_shapes, output_shapes):
    from keras_neuronprune.graph.handlers import layer_flops

    steps = input_shapes[0][1]
    inner_in = [(1,) + tuple(s[2:]) for s in input_shapes]
    inner_out = [(1,) + tuple(s[2:]) for s in output_shapes]
    flops = layer_flops(layer.layer, inner_in, inner_out)
    if flops is NotImplemented or flops is None:
        return None
    return steps * flops
