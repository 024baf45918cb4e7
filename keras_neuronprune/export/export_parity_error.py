"""`ExportParityError`: an exported model does not reproduce Keras."""


class ExportParityError(RuntimeError):
    """Raised when an exported artifact fails its parity check.

    The artifact is not written to the requested path.

    Attributes:
        parity: the failing `ParityCheck`.
    """

    def __init__(self, message, parity=None):
        super().__init__(message)
        self.parity = parity
