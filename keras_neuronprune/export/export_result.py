"""`ExportResult`: what an export produced and how it was checked."""

import dataclasses
import json


@dataclasses.dataclass
class ExportResult:
    """The outcome of `keras_neuronprune.export.tflite` / `.onnx`.

    Attributes:
        format: "tflite" or "onnx".
        path: absolute path of the written file.
        size_bytes: file size on disk.
        quantization: None (float32), "float16", "dynamic" or "int8" for
            TFLite; None for ONNX.
        parity: the `ParityCheck` run during the export (always run; a
            failure raises `ExportParityError` instead of returning).
        gpu: `GpuCompatibilityReport` (TFLite only, else None).
        stripped: True when a `PrunedModel` was stripped before export.
        opset: ONNX opset (ONNX only).
        int8_io: True when inputs/outputs are int8 (TFLite int8 only).
        input_details: list of dicts (name, shape, dtype, quantization).
        output_details: list of dicts (name, shape, dtype, quantization).
    """

    format: str
    path: str
    size_bytes: int
    parity: object
    quantization: object = None
    gpu: object = None
    stripped: bool = False
    opset: object = None
    int8_io: bool = False
    input_details: list = dataclasses.field(default_factory=list)
    output_details: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        out = {
            "format": self.format,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "quantization": self.quantization,
            "parity": self.parity.to_dict() if self.parity else None,
            "gpu": self.gpu.to_dict() if self.gpu is not None else None,
            "stripped": self.stripped,
            "opset": self.opset,
            "int8_io": self.int8_io,
            "input_details": self.input_details,
            "output_details": self.output_details,
        }
        return out

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), default=str, **kwargs)

    def __str__(self):
        quant = self.quantization or "float32"
        if self.format == "onnx":
            quant = f"opset {self.opset}"
        lines = [
            f"{self.format} export ({quant}) -> {self.path} "
            f"({self.size_bytes / 1e6:.2f} MB)",
            f"  {self.parity}",
        ]
        if self.stripped:
            lines.append("  pruning wrappers were stripped before export")
        if self.gpu is not None:
            lines.extend("  " + line for line in str(self.gpu).splitlines())
        return "\n".join(lines)
