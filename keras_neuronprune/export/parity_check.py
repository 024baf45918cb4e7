"""`ParityCheck`: how closely an exported artifact reproduces Keras."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class ParityCheck:
    """Numerical agreement between an exported model and the Keras model.

    Attributes:
        metric: "max_abs_diff" (float32/float16 exports, ONNX),
            "top1_agreement" (quantized classifiers) or "max_rel_diff"
            (quantized models without a class axis).
        value: the measured metric.
        threshold: the bound it must meet (at most for diffs, at least for
            agreement).
        passed: whether it met the bound.
        num_samples: number of samples compared.
        max_abs_diff: max |exported - keras| over all outputs and samples.
        output_scale: max |keras output|, the scale the diff bound uses.
        top1_agreement: share of samples with the same arg-max class
            (None when the output has no class axis).
        data: where the samples came from ("representative_data",
            "parity_data" or "random").
    """

    metric: str
    value: float
    threshold: float
    passed: bool
    num_samples: int
    max_abs_diff: float
    output_scale: float
    top1_agreement: object = None
    data: str = "random"

    def to_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        op = ">=" if self.metric == "top1_agreement" else "<="
        status = "ok" if self.passed else "FAILED"
        extra = ""
        if self.metric != "max_abs_diff":
            extra = f", max_abs_diff={self.max_abs_diff:.3g}"
        return (
            f"parity {status}: {self.metric}={self.value:.6g} {op} "
            f"{self.threshold:.3g} on {self.num_samples} {self.data} "
            f"samples{extra}"
        )

    @classmethod
    def compare(
        cls,
        reference,
        exported,
        mode,
        tolerance=None,
        min_top1_agreement=0.9,
        data="random",
    ):
        """Builds the check for one export.

        Args:
            reference: list of Keras output arrays.
            exported: list of exported-model output arrays (same order).
            mode: "float32", "float16", "dynamic", "int8" or "onnx".
            tolerance: overrides the default bound (absolute diff bound
                relative to max(1, output scale) for float modes; relative
                diff bound for quantized models without a class axis).
            min_top1_agreement: bound for quantized classifiers.
            data: label of the data used.
        """
        if len(reference) != len(exported):
            raise ValueError(
                f"The exported model has {len(exported)} outputs but the "
                f"Keras model has {len(reference)}."
            )
        diffs, scale = [], 0.0
        for r, e in zip(reference, exported):
            r = np.asarray(r, dtype=np.float64)
            e = np.asarray(e, dtype=np.float64).reshape(r.shape)
            diffs.append(float(np.max(np.abs(r - e))) if r.size else 0.0)
            scale = max(scale, float(np.max(np.abs(r))) if r.size else 0.0)
        max_diff = max(diffs) if diffs else 0.0
        n = int(np.asarray(reference[0]).shape[0]) if reference else 0
        top1 = _top1_agreement(reference, exported)

        if mode in ("float32", "float16", "onnx"):
            default = {"float32": 1e-4, "onnx": 1e-4, "float16": 2e-2}[mode]
            bound = (tolerance or default) * max(1.0, scale)
            return cls(
                metric="max_abs_diff",
                value=max_diff,
                threshold=bound,
                passed=bool(max_diff <= bound),
                num_samples=n,
                max_abs_diff=max_diff,
                output_scale=scale,
                top1_agreement=top1,
                data=data,
            )
        if top1 is not None:
            return cls(
                metric="top1_agreement",
                value=top1,
                threshold=min_top1_agreement,
                passed=bool(top1 >= min_top1_agreement),
                num_samples=n,
                max_abs_diff=max_diff,
                output_scale=scale,
                top1_agreement=top1,
                data=data,
            )
        rel = max_diff / max(scale, 1e-12)
        bound = tolerance or 0.1
        return cls(
            metric="max_rel_diff",
            value=rel,
            threshold=bound,
            passed=bool(rel <= bound),
            num_samples=n,
            max_abs_diff=max_diff,
            output_scale=scale,
            data=data,
        )


def _top1_agreement(reference, exported):
    """Arg-max agreement on the first output with a class axis (> 1)."""
    for r, e in zip(reference, exported):
        r = np.asarray(r)
        if r.ndim >= 2 and r.shape[-1] > 1:
            e = np.asarray(e).reshape(r.shape)
            return float(np.mean(np.argmax(r, -1) == np.argmax(e, -1)))
    return None
