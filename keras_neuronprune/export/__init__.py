"""Export to mobile / edge formats with parity and GPU-delegate checks.

- `tflite(model, path, quantization=None | "float16" | "dynamic" | "int8")`
- `onnx(model, path, opset=17)`
- `check_gpu_compatibility(tflite_model)`: offline GPU-delegate op check.

TensorFlow, LiteRT, tf2onnx and onnxruntime are imported lazily, inside the
functions that need them.
"""

from keras_neuronprune.export.export_parity_error import ExportParityError
from keras_neuronprune.export.export_result import ExportResult
from keras_neuronprune.export.gpu_compatibility import check_gpu_compatibility
from keras_neuronprune.export.gpu_compatibility import runtime_gpu_check
from keras_neuronprune.export.gpu_compatibility_error import (
    GpuCompatibilityError,
)
from keras_neuronprune.export.gpu_compatibility_report import (
    GpuCompatibilityReport,
)
from keras_neuronprune.export.gpu_op_issue import GpuOpIssue
from keras_neuronprune.export.onnx_export import onnx
from keras_neuronprune.export.parity_check import ParityCheck
from keras_neuronprune.export.tflite_export import tflite

__all__ = [
    "ExportParityError",
    "ExportResult",
    "GpuCompatibilityError",
    "GpuCompatibilityReport",
    "GpuOpIssue",
    "ParityCheck",
    "check_gpu_compatibility",
    "onnx",
    "runtime_gpu_check",
    "tflite",
]
