"""`GpuCompatibilityError`: a model the TFLite GPU delegate cannot run."""


class GpuCompatibilityError(ValueError):
    """Raised by `tflite(..., require_gpu_compatible=True)`.

    The artifact is not written to the requested path.

    Attributes:
        report: the `GpuCompatibilityReport` listing each incompatible
            operator with its location.
    """

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report
