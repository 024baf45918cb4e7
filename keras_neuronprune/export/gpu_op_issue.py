"""`GpuOpIssue`: one operator the TFLite GPU delegate cannot run."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class GpuOpIssue:
    """Where and why an operator falls back from the GPU delegate to the CPU.

    Attributes:
        subgraph: index of the subgraph in the .tflite file (0 is the main
            graph), or None for a model-level issue.
        op_index: index of the operator in that subgraph's execution order,
            or None for a model-level issue.
        op_name: builtin operator name (e.g. "ARG_MAX") or custom code.
        version: operator version in the flatbuffer.
        inputs: descriptions of the operator's input tensors.
        outputs: descriptions of the operator's output tensors.
        reason: why the GPU delegate rejects it.
    """

    subgraph: object
    op_index: object
    op_name: str
    version: int
    inputs: tuple
    outputs: tuple
    reason: str

    @property
    def location(self):
        if self.op_index is None:
            return "model"
        return f"subgraph {self.subgraph}, op {self.op_index}"

    def to_dict(self):
        return {
            "subgraph": self.subgraph,
            "op_index": self.op_index,
            "op_name": self.op_name,
            "version": self.version,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "reason": self.reason,
        }

    def __str__(self):
        tensors = ""
        if self.inputs or self.outputs:
            tensors = (
                f"\n      inputs:  {', '.join(self.inputs) or '-'}"
                f"\n      outputs: {', '.join(self.outputs) or '-'}"
            )
        return (
            f"[{self.location}] {self.op_name} v{self.version}: "
            f"{self.reason}{tensors}"
        )
