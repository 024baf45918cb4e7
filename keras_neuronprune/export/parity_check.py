"""`ParityCheck`: how closely an exported artifact reproduces Keras."""

import dataclasses

import numpy as np

# Default bounds: float exports must match closely; quantized exports are
# judged relative to the output range (1 for probabilities).
FLOAT_TOLERANCE = {"float32": 1e-4, "onnx": 1e-4, "float16": 2e-2}
QUANTIZED_TOLERANCE = 0.1
CONFIDENCE_MARGIN = 0.1


@dataclasses.dataclass
class ParityCheck:
    """Numerical agreement between an exported model and the Keras model.

    Float exports (float32, float16, ONNX) must reproduce every output to
    within `tolerance` x max(1, max |keras output|). Quantized exports
    (dynamic, int8) are judged by two bounds:

    - the largest difference relative to the output range (1 for outputs
      that are probabilities, max |keras output| otherwise) must be at most
      `tolerance` (default 0.1);
    - for classifiers, the top-1 class must agree on at least
      `min_top1_agreement` (default 0.9) of the samples where the Keras
      model is confident (its top class beats the runner-up by at least
      `confidence_margin` = 0.1 in probability). Near-uniform outputs, such
      as an untrained 1000-class model, have no confident samples, and a
      top-1 comparison there would only measure noise; the relative bound
      still applies.

    Attributes:
        metric: the headline measure: "max_abs_diff" (float exports),
            "top1_agreement" (quantized classifiers with confident samples)
            or "max_rel_diff" (other quantized models).
        value: the measured headline metric.
        threshold: its bound (at most for diffs, at least for agreement).
        passed: whether every bound held.
        num_samples: number of samples compared.
        max_abs_diff: max |exported - keras| over all outputs and samples.
        output_scale: max |keras output|.
        top1_agreement: share of the confident samples with the same
            arg-max class (None without a class axis or confident samples).
        data: where the samples came from ("representative_data",
            "parity_data" or "random").
        max_rel_diff: max_abs_diff relative to the output range (quantized
            exports only).
        rel_threshold: the bound on `max_rel_diff` (quantized only).
        confident_samples: number of samples the agreement counts.
        failed: names of the arguments whose bound failed ("tolerance",
            "min_top1_agreement"); empty when passed.
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
    max_rel_diff: object = None
    rel_threshold: object = None
    confident_samples: object = None
    failed: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        status = "ok" if self.passed else "FAILED"
        parts = []
        if self.metric == "max_abs_diff":
            parts.append(
                _bound("max_abs_diff", self.max_abs_diff, self.threshold, "<=")
            )
        else:
            if self.top1_agreement is not None:
                parts.append(
                    _bound(
                        "top1_agreement",
                        self.top1_agreement,
                        self.threshold,
                        ">=",
                        digits=2,
                    )
                    + f" on {self.confident_samples} confident samples"
                )
            parts.append(
                _bound(
                    "max_rel_diff", self.max_rel_diff, self.rel_threshold, "<="
                )
            )
        text = (
            f"parity {status}: {'; '.join(parts)} "
            f"({self.num_samples} {self.data} samples"
        )
        if self.metric != "max_abs_diff":
            text += f", max_abs_diff={self.max_abs_diff:.3g}"
        return text + ")"

    @classmethod
    def compare(
        cls,
        reference,
        exported,
        mode,
        tolerance=None,
        min_top1_agreement=0.9,
        data="random",
        confidence_margin=CONFIDENCE_MARGIN,
    ):
        """Builds the check for one export.

        Args:
            reference: list of Keras output arrays.
            exported: list of exported-model output arrays (same order).
            mode: "float32", "float16", "dynamic", "int8" or "onnx".
            tolerance: overrides the default bound (see the class doc).
            min_top1_agreement: agreement bound for quantized classifiers.
            data: label of the data used.
            confidence_margin: probability margin of the Keras model's top
                class over the runner-up for a sample to count in the
                agreement.

        Returns:
            A `ParityCheck`.

        Raises:
            ValueError: when the output counts differ.
        """
        if len(reference) != len(exported):
            raise ValueError(
                f"The exported model has {len(exported)} outputs but the "
                f"Keras model has {len(reference)}."
            )
        pairs = []
        for r, e in zip(reference, exported):
            r = np.asarray(r, dtype=np.float64)
            pairs.append((r, np.asarray(e, dtype=np.float64).reshape(r.shape)))
        diffs = [
            float(np.max(np.abs(r - e))) if r.size else 0.0 for r, e in pairs
        ]
        scales = [float(np.max(np.abs(r))) if r.size else 0.0 for r, _ in pairs]
        max_diff = max(diffs, default=0.0)
        scale = max(scales, default=0.0)
        n = int(pairs[0][0].shape[0]) if pairs and pairs[0][0].ndim else 0
        common = dict(
            num_samples=n, max_abs_diff=max_diff, output_scale=scale, data=data
        )

        if mode in FLOAT_TOLERANCE:
            bound = (tolerance or FLOAT_TOLERANCE[mode]) * max(1.0, scale)
            passed = bool(max_diff <= bound)
            return cls(
                metric="max_abs_diff",
                value=max_diff,
                threshold=bound,
                passed=passed,
                top1_agreement=_top1_agreement(pairs, confidence_margin)[0],
                failed=[] if passed else ["tolerance"],
                **common,
            )

        rel = 0.0
        for (r, _), d, s in zip(pairs, diffs, scales):
            extent = 1.0 if _is_probability(r) else max(s, 1e-12)
            rel = max(rel, d / extent)
        rel_bound = tolerance or QUANTIZED_TOLERANCE
        agreement, confident = _top1_agreement(pairs, confidence_margin)
        failed = []
        if agreement is not None and agreement < min_top1_agreement:
            failed.append("min_top1_agreement")
        if rel > rel_bound:
            failed.append("tolerance")
        if agreement is not None:
            metric, value, threshold = (
                "top1_agreement",
                agreement,
                min_top1_agreement,
            )
        else:
            metric, value, threshold = "max_rel_diff", rel, rel_bound
        return cls(
            metric=metric,
            value=value,
            threshold=threshold,
            passed=not failed,
            top1_agreement=agreement,
            max_rel_diff=rel,
            rel_threshold=rel_bound,
            confident_samples=confident,
            failed=failed,
            **common,
        )


def _bound(name, value, bound, op, digits=None):
    if digits is None:
        shown, limit = f"{value:.3g}", f"{bound:.3g}"
    else:
        shown, limit = f"{value:.{digits}f}", f"{bound:.{digits}f}"
    held = value <= bound if op == "<=" else value >= bound
    if held:
        word = "allowed" if op == "<=" else "required"
        return f"{name}={shown} {op} {word} {limit}"
    if op == "<=":
        return f"{name}={shown} > allowed {limit}"
    return f"{name}={shown} < required {limit}"


def _is_probability(r):
    """Whether the rows of `r` (class axis last) are probability vectors."""
    if r.ndim < 2 or r.shape[-1] < 2 or not r.size:
        return False
    return bool(
        np.min(r) >= -1e-6
        and np.max(r) <= 1 + 1e-6
        and np.allclose(np.sum(r, axis=-1), 1.0, atol=1e-3)
    )


def _softmax(r):
    z = r - np.max(r, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def _top1_agreement(pairs, margin):
    """Agreement on the first class output, where Keras is confident.

    Returns `(agreement, confident_samples)`; agreement is None without a
    class axis or without confident samples.
    """
    for r, e in pairs:
        if r.ndim < 2 or r.shape[-1] < 2:
            continue
        probs = r if _is_probability(r) else _softmax(r)
        top2 = np.sort(probs, axis=-1)[..., -2:]
        confident = (top2[..., 1] - top2[..., 0]) >= margin
        count = int(np.sum(confident))
        if not count:
            return None, 0
        same = np.argmax(r, -1) == np.argmax(e, -1)
        return float(np.mean(same[confident])), count
    return None, None
