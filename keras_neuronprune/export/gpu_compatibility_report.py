"""`GpuCompatibilityReport`: result of a GPU-delegate compatibility check."""

import collections
import dataclasses


@dataclasses.dataclass
class GpuCompatibilityReport:
    """What the TFLite GPU delegate can and cannot run in a .tflite model.

    Attributes:
        issues: list of `GpuOpIssue`, one per operator that would fall back
            to the CPU (plus model-level issues such as a dynamic input).
        warnings: list of str, things that do not block delegation but cost
            speed or need care on device.
        op_counts: dict operator name -> number of occurrences (all
            subgraphs).
        op_versions: dict operator name -> sorted list of versions seen.
        num_ops: total number of operators.
        allow_quantized: whether int8/uint8 tensors were accepted (the GPU
            delegate runs quantized models when its quantized-model support
            is on, which is the default of GPU delegate v2).
        runtime: dict with the result of LiteRT's `CompiledModel` GPU check
            (`status` is "fully_accelerated", "partially_accelerated" or
            "skipped", with a `detail` string), or None when not attempted.
    """

    issues: list
    warnings: list
    op_counts: dict
    op_versions: dict
    num_ops: int
    allow_quantized: bool = True
    runtime: object = None

    @property
    def compatible(self):
        """True when every operator can run on the GPU delegate."""
        return not self.issues

    def incompatible_ops(self):
        """Returns a Counter of incompatible operator names."""
        return collections.Counter(
            i.op_name for i in self.issues if i.op_index is not None
        )

    def to_dict(self):
        return {
            "compatible": self.compatible,
            "num_ops": self.num_ops,
            "issues": [i.to_dict() for i in self.issues],
            "warnings": list(self.warnings),
            "op_counts": dict(self.op_counts),
            "op_versions": {k: list(v) for k, v in self.op_versions.items()},
            "allow_quantized": self.allow_quantized,
            "runtime": self.runtime,
        }

    def __str__(self):
        lines = []
        if self.compatible:
            lines.append(
                f"GPU delegate: all {self.num_ops} operators are supported."
            )
        else:
            lines.append(
                f"GPU delegate: {len(self.issues)} of {self.num_ops} "
                "operators (or model properties) are not supported; they "
                "run on the CPU and split the graph:"
            )
            lines.extend(f"  - {issue}" for issue in self.issues)
        lines.extend(f"  warning: {w}" for w in self.warnings)
        if self.runtime is not None:
            lines.append(
                f"  LiteRT CompiledModel GPU check: {self.runtime['status']}"
                f" ({self.runtime.get('detail', '')})"
            )
        return "\n".join(lines)
