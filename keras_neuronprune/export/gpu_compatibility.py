"""Offline check of a .tflite model against the TFLite GPU delegate.

TF 2.21's `tf.lite.experimental.Analyzer(gpu_compatibility=True)` never
runs its GPU check (it reports every model as compatible), so this module
reads the operators, their versions and tensor types straight from the
flatbuffer and applies the GPU delegate's rules:

- the operator list documented at
  https://ai.google.dev/edge/litert/performance/gpu (formerly
  tensorflow.org/lite/performance/gpu, "Supported operations"), extended
  with every operator the delegate's model builder accepts
  (`tensorflow/lite/delegates/gpu/common/model_builder.cc`,
  `NewOperationParser`), with that builder's maximum op versions;
- per-operator constraints from
  `tensorflow/lite/tools/versioning/gpu_compatibility.cc`
  (`CheckGpuDelegateCompatibility`): fused activations, depthwise
  multipliers, strided-slice masks, constant reduction axes, broadcast
  shapes, and so on;
- the delegate's tensor rules (`GetOpsToReplace`): every non-constant
  tensor must be float32/float16 (or int8/uint8 when quantized models are
  allowed) and of rank <= 4.

Where LiteRT finds a GPU backend at run time, `runtime_gpu_check` also asks
LiteRT's `CompiledModel` whether the model is fully accelerated; on hosts
without one (no WebGPU/OpenCL adapter) it returns status "skipped".
"""

import collections

from keras_neuronprune.export._flatbuffer import read_tflite
from keras_neuronprune.export.gpu_compatibility_report import (
    GpuCompatibilityReport,
)
from keras_neuronprune.export.gpu_op_issue import GpuOpIssue

# Operators listed on the GPU delegate documentation page (float ops).
DOCUMENTED_GPU_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXP",
        "FULLY_CONNECTED",
        "LOGICAL_AND",
        "LOGISTIC",
        "LSTM",
        "MAX_POOL_2D",
        "MAXIMUM",
        "MINIMUM",
        "MUL",
        "PAD",
        "PRELU",
        "RELU",
        "RELU6",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "SOFTMAX",
        "STRIDED_SLICE",
        "SUB",
        "TRANSPOSE_CONV",
    }
)

# Every builtin operator the GPU model builder parses, with the highest op
# version it accepts (None: the builder does not check the version).
_ELEMENTWISE_MAX_VERSION = 2
GPU_OP_MAX_VERSION = {
    "ABS": 2,
    "ADD": 2,
    "ADD_N": None,
    "AVERAGE_POOL_2D": 2,
    "BATCH_MATMUL": None,
    "CAST": None,
    "CONCATENATION": 2,
    "CONV_2D": 6,
    "COS": 2,
    "CUMSUM": 1,
    "DENSIFY": 1,
    "DEPTH_TO_SPACE": None,
    "DEPTHWISE_CONV_2D": 6,
    "DIV": 2,
    "ELU": 2,
    "EQUAL": 2,
    "EXP": 2,
    "FLOOR": 2,
    "FLOOR_DIV": 2,
    "FLOOR_MOD": 2,
    "FULLY_CONNECTED": 9,
    "GREATER": 2,
    "GREATER_EQUAL": 2,
    "HARD_SWISH": None,
    "LEAKY_RELU": 2,
    "LESS": 2,
    "LESS_EQUAL": 2,
    "LOG": 2,
    "LOGICAL_AND": 2,
    "LOGISTIC": 2,
    "LSTM": 4,
    "MAX_POOL_2D": 2,
    "MAXIMUM": 2,
    "MEAN": None,
    "MINIMUM": 2,
    "MIRROR_PAD": 2,
    "MUL": 3,
    "NEG": 2,
    "NOT_EQUAL": 2,
    "ONE_HOT": 1,
    "PACK": None,
    "PAD": 2,
    "PADV2": 2,
    "POW": 2,
    "PRELU": 1,
    "REDUCE_MAX": None,
    "REDUCE_MIN": None,
    "REDUCE_PROD": None,
    "RELU": 2,
    "RELU6": 2,
    "RELU_N1_TO_1": None,
    "RESHAPE": 1,
    "RESIZE_BILINEAR": 3,
    "RESIZE_NEAREST_NEIGHBOR": 3,
    "RSQRT": 2,
    "SELECT_V2": 1,
    "SIN": 2,
    "SLICE": 2,
    "SOFTMAX": 2,
    "SPACE_TO_DEPTH": 2,
    "SPLIT": None,
    "SPLIT_V": None,
    "SQRT": 2,
    "SQUARE": 2,
    "SQUARED_DIFFERENCE": 2,
    "STRIDED_SLICE": 2,
    "SUB": 2,
    "SUM": None,
    "TANH": 2,
    "TILE": None,
    "TRANSPOSE": 2,
    "TRANSPOSE_CONV": 3,
}
# Only accepted when the delegate's quantized-model support is on.
GPU_QUANT_OP_MAX_VERSION = {"QUANTIZE": 2, "DEQUANTIZE": 3}
GPU_CUSTOM_OPS = frozenset(
    {
        "Convolution2DTransposeBias",
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
        "Resampler",
    }
)

_ONE_ARG_ELEMENTWISE = frozenset(
    "ABS CEIL COS ELU EXP FLOOR GELU LOG LOGISTIC NEG RSQRT SIGN SIN SQRT "
    "SQUARE TANH".split()
)
_TWO_ARG_ELEMENTWISE = frozenset(
    "ATAN2 DIV EQUAL FLOOR_DIV FLOOR_MOD GREATER GREATER_EQUAL LOGICAL_AND "
    "LESS LESS_EQUAL MAXIMUM MINIMUM NOT_EQUAL POW SQUARED_DIFFERENCE "
    "SUB".split()
)
_LOGICAL = frozenset(
    "EQUAL GREATER GREATER_EQUAL LESS LESS_EQUAL NOT_EQUAL".split()
)
_FLOAT = ("FLOAT32", "FLOAT16")
_QUANT = ("INT8", "UINT8")
_ACTIVATION_SIGN_BIT = 5
_OPTIONS_WITH_ACTIVATION = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "MUL": "MulOptions",
    "SUB": "SubOptions",
    "DIV": "DivOptions",
    "CONCATENATION": "ConcatenationOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
}


def check_gpu_compatibility(tflite_model, allow_quantized=True):
    """Checks every operator of a .tflite model against the GPU delegate.

    Args:
        tflite_model: path to a .tflite file, or its bytes.
        allow_quantized: accept int8/uint8 tensors and QUANTIZE/DEQUANTIZE
            (the GPU delegate v2 default). Set False for a delegate built
            without quantized-model support.

    Returns:
        A `GpuCompatibilityReport`; `report.compatible` is True when the
        whole model can be delegated, else `report.issues` names each
        operator (subgraph, op index, op name, version, tensors) that falls
        back to the CPU and why.

    Example:

    ```python
    report = keras_neuronprune.export.check_gpu_compatibility("m.tflite")
    if not report.compatible:
        print(report)
    ```
    """
    model = read_tflite(tflite_model)
    issues = []
    warnings = []
    counts = collections.Counter()
    versions = collections.defaultdict(set)

    main = model.subgraphs[0] if model.subgraphs else None
    if main is not None:
        for t in main.inputs:
            tensor = main.tensors[t]
            if tensor.is_dynamic:
                warnings.append(
                    f"input {tensor.describe()} has a dynamic dimension; the "
                    "GPU delegate needs static shapes, so resize it before "
                    "applying the delegate (or export with a fixed batch "
                    "size)."
                )
    if len(model.subgraphs) > 1:
        warnings.append(
            f"the model has {len(model.subgraphs)} subgraphs; the GPU "
            "delegate only runs the main subgraph (0)."
        )

    # float16 (and weight-only int8) models keep weights in a DEQUANTIZE of
    # a constant; the delegate folds those into float weights at init
    # (FP16GraphPartitionHelper), so treat their outputs as constants.
    folded = set()
    for sg in model.subgraphs:
        for op in sg.operators:
            ins = [i for i in op.inputs if i >= 0]
            if (
                op.name == "DEQUANTIZE"
                and len(ins) == 1
                and sg.tensors[ins[0]].is_constant
            ):
                folded.add((sg.index, op.index))
                for o in op.outputs:
                    sg.tensors[o].is_constant = True

    consumers = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            for t in op.inputs:
                if t >= 0:
                    consumers.setdefault((sg.index, t), []).append(op)

    for sg in model.subgraphs:
        for op in sg.operators:
            counts[op.name] += 1
            versions[op.name].add(op.version)
            if (sg.index, op.index) in folded:
                continue
            reason = _op_reason(sg, op, allow_quantized, consumers)
            if reason is None:
                reason = _tensor_reason(sg, op, allow_quantized)
            if reason is not None:
                issues.append(
                    GpuOpIssue(
                        subgraph=sg.index,
                        op_index=op.index,
                        op_name=op.name,
                        version=op.version,
                        inputs=tuple(
                            sg.tensors[i].describe() if i >= 0 else "(none)"
                            for i in op.inputs
                        ),
                        outputs=tuple(
                            sg.tensors[i].describe() for i in op.outputs
                        ),
                        reason=reason,
                    )
                )
    return GpuCompatibilityReport(
        issues=issues,
        warnings=warnings,
        op_counts=dict(sorted(counts.items())),
        op_versions={k: sorted(v) for k, v in sorted(versions.items())},
        num_ops=sum(counts.values()),
        allow_quantized=allow_quantized,
    )


def runtime_gpu_check(tflite_model):
    """Asks LiteRT's `CompiledModel` whether the GPU runs the whole model.

    This needs a GPU backend that LiteRT can open (WebGPU, OpenCL or Metal,
    i.e. a phone, a desktop with a GPU driver, or GPU CI). On hosts without
    one, LiteRT raises and this returns status "skipped" with the reason.

    Args:
        tflite_model: path to a .tflite file, or its bytes.

    Returns:
        dict with `status` ("fully_accelerated", "partially_accelerated" or
        "skipped") and `detail`.
    """
    from keras_neuronprune.export._flatbuffer import load_tflite_bytes

    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    except ImportError as e:
        return {"status": "skipped", "detail": f"LiteRT unavailable: {e}"}
    buf = load_tflite_bytes(tflite_model)
    try:
        compiled = CompiledModel.from_buffer(
            buf, hardware_accel=HardwareAccelerator.GPU
        )
        full = bool(compiled.is_fully_accelerated())
    except Exception as e:  # LiteRT raises RuntimeError without a backend.
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {
            "status": "skipped",
            "detail": "no usable GPU backend at run time "
            f"({type(e).__name__}: {first_line[:200]})",
        }
    if full:
        return {"status": "fully_accelerated", "detail": "LiteRT GPU"}
    return {
        "status": "partially_accelerated",
        "detail": "LiteRT GPU leaves some operators on the CPU",
    }


def _op_reason(sg, op, allow_quantized, consumers):
    """Returns why `op` is not supported, or None if it is."""
    name = op.name
    if op.is_custom:
        if name in GPU_CUSTOM_OPS:
            return None
        if name.startswith("Flex"):
            return (
                f"custom op '{name}' is a TensorFlow (Flex / SELECT_TF_OPS) "
                "kernel; the GPU delegate does not run it"
            )
        return f"custom op '{name}' is not supported by the GPU delegate"

    table = dict(GPU_OP_MAX_VERSION)
    if allow_quantized:
        table.update(GPU_QUANT_OP_MAX_VERSION)
    if name not in table:
        if name in GPU_QUANT_OP_MAX_VERSION:
            return f"{name} needs the delegate's quantized-model support"
        return f"{name} is not in the GPU delegate's supported operator list"
    max_version = table[name]
    if max_version is not None and op.version > max_version:
        return (
            f"{name} version {op.version} is newer than the GPU delegate "
            f"supports (max {max_version})"
        )

    if name in _OPTIONS_WITH_ACTIVATION:
        opts = op.options(_OPTIONS_WITH_ACTIVATION[name])
        if opts is not None:
            if opts.FusedActivationFunction() == _ACTIVATION_SIGN_BIT:
                return "fused activation SIGN_BIT is not supported"

    check = _OP_CHECKS.get(name)
    if check is None:
        return None
    return check(_OpView(sg, op, consumers))


class _OpView:
    """An operator with its input / output tensors, as the checks read it."""

    def __init__(self, sg, op, consumers):
        tensors = sg.tensors
        self.sg = sg
        self.op = op
        self.name = op.name
        self.consumers = consumers
        self.ins = [tensors[i] if i >= 0 else None for i in op.inputs]
        self.outs = [tensors[i] for i in op.outputs]
        self.runtime_in = [
            t for t in self.ins if t is not None and not t.is_constant
        ]
        self.const_in = [t for t in self.ins if t is not None and t.is_constant]

    def options(self, cls):
        return self.op.options(cls)


# Per-operator constraints of `CheckGpuDelegateCompatibility`, one function
# per operator (or family): `check(view) -> reason or None`.
def _check_conv_2d(v):
    if len(v.runtime_in) > 2 or len(v.outs) != 1:
        return "CONV_2D needs 1-2 runtime inputs and 1 output"
    o = v.options("Conv2DOptions")
    if (
        o is not None
        and min(
            o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor()
        )
        <= 0
    ):
        return "CONV_2D strides and dilations must be positive"
    return None


def _check_depthwise_conv_2d(v):
    ins = v.ins
    o = v.options("DepthwiseConv2DOptions")
    if any(t is None or len(t.shape) != 4 for t in ins[:2] + v.outs[:1]):
        return "DEPTHWISE_CONV_2D needs 4-D input, filter and output"
    if o is not None:
        mult = o.DepthMultiplier()
        if mult != 1 and ins[0].shape[3] != 1:
            return (
                f"depth_multiplier={mult} with {ins[0].shape[3]} input "
                "channels (only multiplier 1, or 1 input channel)"
            )
    return None


def _check_pool_2d(v):
    o = v.options("Pool2DOptions")
    if len(v.runtime_in) != 1:
        return f"{v.name} needs exactly 1 runtime input"
    if (
        o is not None
        and min(o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW())
        <= 0
    ):
        return f"{v.name} kernel and strides must be positive"
    return None


def _check_fully_connected(v):
    ins = v.ins
    o = v.options("FullyConnectedOptions")
    if o is not None and o.WeightsFormat() != 0:
        return "FULLY_CONNECTED with shuffled weights format"
    if len(v.runtime_in) > 2:
        return "FULLY_CONNECTED with more than 2 runtime inputs"
    if ins and ins[0] is not None and ins[0].is_constant:
        return "FULLY_CONNECTED with a constant input"
    if (
        o is not None
        and o.KeepNumDims()
        and len(ins[0].shape) != len(v.outs[0].shape)
    ):
        return "FULLY_CONNECTED keep_num_dims with a rank change"
    return None


def _check_reduce(v):
    if len(v.runtime_in) != 1:
        return f"{v.name} needs exactly 1 runtime input"
    axes = v.ins[1] if len(v.ins) > 1 else None
    if axes is None or not axes.is_constant:
        return f"{v.name} is only supported with constant axes"
    if axes.dtype != "INT32":
        return f"{v.name} needs int32 axes, got {axes.dtype}"
    return None


def _check_add(v):
    ins = v.ins
    if len(ins) != 2:
        return "ADD needs exactly two inputs"
    if not _broadcastable(ins[0].shape, ins[1].shape):
        return (
            f"ADD cannot broadcast {list(ins[0].shape)} with "
            f"{list(ins[1].shape)}"
        )
    return None


def _check_mul(v):
    if len(v.ins) != 2:
        return "MUL needs exactly two inputs"
    a, b = v.ins[0].shape, v.ins[1].shape
    if len(a) == len(b):
        a_smaller = any(x < y for x, y in zip(a, b))
        b_smaller = any(y < x for x, y in zip(a, b))
        if a_smaller and b_smaller:
            return (
                "MUL needs one input at least as large as the other in "
                f"every dimension ({list(a)} vs {list(b)})"
            )
    elif not _broadcastable(a, b):
        return f"MUL cannot broadcast {list(a)} with {list(b)}"
    return None


def _check_one_arg_elementwise(v):
    if len(v.runtime_in) != 1 or v.const_in or len(v.outs) != 1:
        return f"{v.name} needs exactly 1 runtime input and no constants"
    return None


def _check_two_arg_elementwise(v):
    ok = (len(v.runtime_in), len(v.const_in)) in ((2, 0), (1, 1))
    if not ok or len(v.outs) != 1:
        return f"{v.name} needs 1 or 2 runtime operands"
    if v.name in _LOGICAL:
        users = v.consumers.get((v.sg.index, v.op.outputs[0]), [])
        if len(users) != 1 or users[0].name != "CAST":
            return (
                f"{v.name} is only delegated when its bool output feeds a "
                "single CAST to float"
            )
    return None


def _check_strided_slice(v):
    o = v.options("StridedSliceOptions")
    if o is not None:
        if o.EllipsisMask():
            return "STRIDED_SLICE with ellipsis_mask"
        if o.NewAxisMask():
            return "STRIDED_SLICE with new_axis_mask"
        if o.ShrinkAxisMask():
            return "STRIDED_SLICE with shrink_axis_mask"
    if len(v.ins) < 4:
        return "STRIDED_SLICE needs 4 inputs"
    if len(v.ins[0].shape) not in (3, 4):
        return "STRIDED_SLICE only on 3-D or 4-D tensors"
    return None


def _check_slice(v):
    if len(v.ins) < 3 or len(v.ins[0].shape) not in (3, 4):
        return "SLICE only on 3-D or 4-D tensors"
    return None


def _check_softmax(v):
    o = v.options("SoftmaxOptions")
    if o is not None and o.Beta() != 1.0:
        return f"SOFTMAX beta={o.Beta()} (only 1 is supported)"
    return None


def _check_pad(v):
    name = v.name
    if name == "MIRROR_PAD":
        o = v.options("MirrorPadOptions")
        if o is not None and o.Mode() != 0:
            return "MIRROR_PAD only in REFLECT mode"
    if len(v.runtime_in) != 1:
        return f"{name} needs exactly 1 runtime input"
    pads = v.ins[1] if len(v.ins) > 1 else None
    if pads is None or len(pads.shape) != 2:
        return f"{name} paddings must be a 2-D tensor"
    if pads.shape[0] not in (3, 4) or pads.shape[1] != 2:
        return f"{name} paddings must be 3x2 or 4x2, got {pads.shape}"
    return None


def _check_reshape(v):
    if len(v.runtime_in) != 1 or len(v.outs) != 1:
        return (
            "RESHAPE needs exactly 1 runtime input (a computed target "
            "shape, e.g. from a dynamic batch, is not supported)"
        )
    return None


def _check_resize_bilinear(v):
    o = v.options("ResizeBilinearOptions")
    if o is not None and o.AlignCorners() and o.HalfPixelCenters():
        return "RESIZE_BILINEAR with align_corners and half_pixel_centers"
    return None


def _check_cumsum(v):
    ins = v.ins
    if (
        len(ins) != 2
        or ins[0].dtype not in _FLOAT
        or ins[1].dtype != "INT32"
        or not ins[1].is_constant
    ):
        return "CUMSUM needs a float input and a constant int32 axis"
    return None


def _check_cast(v):
    src, dst = v.ins[0].dtype, v.outs[0].dtype
    ok = (
        (src == "BOOL" and dst in _FLOAT)
        or (src in _FLOAT and dst == "BOOL")
        or (src in ("FLOAT32", "INT32") and dst in ("FLOAT32", "INT32"))
    )
    if not ok:
        return f"CAST from {src} to {dst}"
    return None


def _check_block_size(v):
    cls = (
        "DepthToSpaceOptions"
        if v.name == "DEPTH_TO_SPACE"
        else "SpaceToDepthOptions"
    )
    o = v.options(cls)
    if o is not None and o.BlockSize() <= 1:
        return f"{v.name} block_size must be > 1"
    return None


def _check_add_n(v):
    if len(v.ins) != 2:
        return "ADD_N only with 2 inputs"
    return None


# Operator name -> its check; operators without an entry have no extra
# constraint beyond the version and tensor rules.
_OP_CHECKS = {
    "CONV_2D": _check_conv_2d,
    "DEPTHWISE_CONV_2D": _check_depthwise_conv_2d,
    "AVERAGE_POOL_2D": _check_pool_2d,
    "MAX_POOL_2D": _check_pool_2d,
    "FULLY_CONNECTED": _check_fully_connected,
    "ADD": _check_add,
    "MUL": _check_mul,
    "STRIDED_SLICE": _check_strided_slice,
    "SLICE": _check_slice,
    "SOFTMAX": _check_softmax,
    "PAD": _check_pad,
    "PADV2": _check_pad,
    "MIRROR_PAD": _check_pad,
    "RESHAPE": _check_reshape,
    "RESIZE_BILINEAR": _check_resize_bilinear,
    "CUMSUM": _check_cumsum,
    "CAST": _check_cast,
    "DEPTH_TO_SPACE": _check_block_size,
    "SPACE_TO_DEPTH": _check_block_size,
    "ADD_N": _check_add_n,
    **dict.fromkeys(
        ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"),
        _check_reduce,
    ),
    **dict.fromkeys(_ONE_ARG_ELEMENTWISE, _check_one_arg_elementwise),
    **dict.fromkeys(_TWO_ARG_ELEMENTWISE, _check_two_arg_elementwise),
}


def _tensor_reason(sg, op, allow_quantized):
    """Tensor type / rank rules the delegate applies to every operator."""
    allowed_in = set(_FLOAT)
    allowed_out = set(_FLOAT)
    if allow_quantized:
        allowed_in |= set(_QUANT)
        allowed_out |= set(_QUANT)
    if op.name in _LOGICAL:
        allowed_out.add("BOOL")
    if op.name == "CAST":
        allowed_in |= {"BOOL", "INT32"}
        allowed_out |= {"INT32", "BOOL"}
    if op.name == "ONE_HOT":
        allowed_in.add("INT32")
    for idx, allowed, side in (
        (op.inputs, allowed_in, "input"),
        (op.outputs, allowed_out, "output"),
    ):
        for i in idx:
            if i < 0:
                continue
            t = sg.tensors[i]
            if len(t.shape) >= 5:
                return f"{side} {t.describe()} has rank {len(t.shape)} (max 4)"
            if not t.is_constant and t.dtype not in allowed:
                return (
                    f"{side} {t.describe()} has type {t.dtype}; the GPU "
                    f"delegate needs {'/'.join(sorted(allowed))}"
                )
    return None


def _broadcastable(a, b):
    if len(a) <= 1 or len(b) <= 1 or len(a) == len(b):
        # Same rank: elementwise broadcasting of size-1 dims, which the
        # delegate handles (enhanced broadcast is assumed offline).
        return all(x == y or x == 1 or y == 1 for x, y in zip(a, b))
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    for x, y in zip(reversed(longer), reversed(shorter)):
        if x != y and x != 1 and y != 1:
            return False
    return True
