"""Read operators and tensors out of a .tflite flatbuffer.

Uses the flatbuffer schema bindings that ship with `ai_edge_litert`
(`schema_py_generated`), so no TensorFlow import is needed. The reader is
lazy: weights are never copied, only their sizes are looked at, so a 100 MB
model is read in milliseconds.
"""

import dataclasses
import functools
import os

from keras_neuronprune.export._common import import_litert


def _schema():
    return import_litert("schema_py_generated", "Reading .tflite files")


def _ints(count, values):
    """`values()` (a flatbuffer index vector) as ints; () when `count` is 0."""
    return tuple(int(i) for i in values()) if count else ()


@functools.lru_cache(maxsize=None)
def _enum_names(enum_name):
    enum = getattr(_schema(), enum_name)
    return {
        value: name
        for name, value in vars(enum).items()
        if not name.startswith("_") and isinstance(value, int)
    }


@dataclasses.dataclass
class TensorInfo:
    """One tensor of a subgraph."""

    index: int
    name: str
    dtype: str
    shape: tuple
    shape_signature: tuple
    is_constant: bool
    is_variable: bool
    quantized: bool

    @property
    def is_dynamic(self):
        return any(d < 0 for d in self.shape_signature)

    def describe(self):
        shape = "x".join(str(d) for d in self.shape_signature) or "scalar"
        kind = "const " if self.is_constant else ""
        return f"#{self.index} {kind}{self.dtype}[{shape}] '{self.name}'"


@dataclasses.dataclass
class OperatorInfo:
    """One operator of a subgraph, with its flatbuffer options table."""

    subgraph: int
    index: int
    name: str
    version: int
    is_custom: bool
    inputs: tuple
    outputs: tuple
    options_type: int
    options_table: object = dataclasses.field(repr=False, default=None)

    def options(self, class_name):
        """Returns the builtin options parsed as `schema.<class_name>`."""
        if self.options_table is None:
            return None
        options = getattr(_schema(), class_name)()
        options.Init(self.options_table.Bytes, self.options_table.Pos)
        return options


@dataclasses.dataclass
class SubgraphInfo:
    index: int
    name: str
    tensors: list
    operators: list
    inputs: tuple
    outputs: tuple


@dataclasses.dataclass
class ModelInfo:
    version: int
    subgraphs: list
    buffer: bytes = dataclasses.field(repr=False, default=b"")

    def operators(self):
        for subgraph in self.subgraphs:
            yield from subgraph.operators


def load_tflite_bytes(model):
    """Returns the flatbuffer bytes of a path, bytes or bytearray."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            return f.read()
    raise TypeError(
        "`tflite_model` must be a path or the bytes of a .tflite file. "
        f"Received: tflite_model of type {type(model).__name__}"
    )


def read_tflite(model):
    """Parses a .tflite flatbuffer.

    Args:
        model: path to a .tflite file or its bytes.

    Returns:
        A `ModelInfo` with every subgraph, operator and tensor.

    Raises:
        ValueError: if the bytes are not a TFLite flatbuffer.
    """
    schema = _schema()
    buf = load_tflite_bytes(model)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(
            "`tflite_model` is not a TFLite flatbuffer (missing the 'TFL3' "
            "file identifier)."
        )
    fb_model = schema.Model.GetRootAs(buf, 0)
    op_names = _enum_names("BuiltinOperator")
    type_names = _enum_names("TensorType")

    opcodes = []
    for i in range(fb_model.OperatorCodesLength()):
        code = fb_model.OperatorCodes(i)
        # Builtin codes above 127 live in `builtin_code`; older files keep
        # the value only in the deprecated int8 field.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        if builtin == schema.BuiltinOperator.CUSTOM:
            name = custom.decode() if custom else "CUSTOM"
            opcodes.append((name, code.Version(), True))
        else:
            name = op_names.get(builtin, f"BUILTIN_{builtin}")
            opcodes.append((name, code.Version(), False))

    def buffer_has_data(index):
        if index <= 0 or index >= fb_model.BuffersLength():
            return False
        b = fb_model.Buffers(index)
        # Models over 2 GB keep weights after the flatbuffer (offset/size).
        return b.DataLength() > 0 or b.Size() > 0

    subgraphs = []
    for s in range(fb_model.SubgraphsLength()):
        sg = fb_model.Subgraphs(s)
        tensors = []
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            shape = (
                tuple(int(d) for d in tensor.ShapeAsNumpy())
                if (tensor.ShapeLength())
                else ()
            )
            signature = (
                tuple(int(d) for d in tensor.ShapeSignatureAsNumpy())
                if tensor.ShapeSignatureLength()
                else shape
            )
            quant = tensor.Quantization()
            quantized = bool(quant is not None and quant.ScaleLength() > 0)
            name = tensor.Name()
            tensors.append(
                TensorInfo(
                    index=t,
                    name=name.decode() if name else "",
                    dtype=type_names.get(tensor.Type(), str(tensor.Type())),
                    shape=shape,
                    shape_signature=signature,
                    is_constant=buffer_has_data(tensor.Buffer()),
                    is_variable=bool(tensor.IsVariable()),
                    quantized=quantized,
                )
            )
        operators = []
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            name, version, is_custom = opcodes[op.OpcodeIndex()]
            operators.append(
                OperatorInfo(
                    subgraph=s,
                    index=o,
                    name=name,
                    version=version,
                    is_custom=is_custom,
                    inputs=_ints(op.InputsLength(), op.InputsAsNumpy),
                    outputs=_ints(op.OutputsLength(), op.OutputsAsNumpy),
                    options_type=op.BuiltinOptionsType(),
                    options_table=op.BuiltinOptions(),
                )
            )
        sg_name = sg.Name()
        subgraphs.append(
            SubgraphInfo(
                index=s,
                name=sg_name.decode() if sg_name else "",
                tensors=tensors,
                operators=operators,
                inputs=_ints(sg.InputsLength(), sg.InputsAsNumpy),
                outputs=_ints(sg.OutputsLength(), sg.OutputsAsNumpy),
            )
        )
    return ModelInfo(
        version=fb_model.Version(), subgraphs=subgraphs, buffer=buf
    )


def count_macs(model):
    """Multiply-accumulates of one inference, counted from the flatbuffer.

    Only the layers that dominate CNN cost are counted (CONV_2D,
    DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL); this
    is the cost of what the interpreter actually runs, after the converter
    folded BatchNorm and fused activations.

    Args:
        model: a `ModelInfo`, a path or .tflite bytes.

    Returns:
        int, the number of MACs for the primary subgraph.
    """
    if not isinstance(model, ModelInfo):
        model = read_tflite(model)
    sg = model.subgraphs[0]
    total = 0
    for op in sg.operators:
        outs = [sg.tensors[i] for i in op.outputs if i >= 0]
        ins = [sg.tensors[i] if i >= 0 else None for i in op.inputs]
        if not outs:
            continue
        out_elems = _prod(outs[0].shape)
        if op.name == "CONV_2D" and len(ins) > 1 and ins[1] is not None:
            # filter [O, kh, kw, I/groups]
            kh, kw, cin = ins[1].shape[1:4]
            total += out_elems * kh * kw * cin
        elif op.name == "DEPTHWISE_CONV_2D" and len(ins) > 1:
            kh, kw = ins[1].shape[1:3]
            total += out_elems * kh * kw
        elif op.name == "FULLY_CONNECTED" and len(ins) > 1:
            total += out_elems * ins[1].shape[-1]
        elif op.name == "TRANSPOSE_CONV" and len(ins) > 2:
            kh, kw, cout = ins[1].shape[1], ins[1].shape[2], ins[1].shape[0]
            total += _prod(ins[2].shape) * kh * kw * cout
        elif op.name == "BATCH_MATMUL" and len(ins) > 1:
            total += out_elems * ins[0].shape[-1]
    return int(total)


def _prod(values):
    out = 1
    for v in values:
        out *= max(int(v), 1)
    return out
