"""`LowRankReport`: what `factorize_low_rank` did to each layer."""

import dataclasses


@dataclasses.dataclass
class LayerFactorization:
    """One layer's factorisation (or why it was left alone).

    Attributes:
        name: the original layer name (kept by the 1x1 layer).
        rank: the rank used (None when skipped).
        params_before: parameters of the original layer.
        params_after: parameters of the two new layers (or unchanged).
        factorized: whether the layer was split.
        reason: why it was not split, else None.
    """

    name: str
    rank: int | None
    params_before: int
    params_after: int
    factorized: bool
    reason: str | None = None


class LowRankReport:
    """Per-layer ranks and parameter counts of a factorised model.

    Attributes:
        layers: list of `LayerFactorization`.
        params_before, params_after: totals of the two models.
    """

    def __init__(self, layers, params_before, params_after):
        self.layers = list(layers)
        self.params_before = int(params_before)
        self.params_after = int(params_after)

    @property
    def factorized(self):
        return [layer for layer in self.layers if layer.factorized]

    def __str__(self):
        lines = [
            f"LowRankReport: params {self.params_before} -> "
            f"{self.params_after} "
            f"({self.params_after / max(self.params_before, 1):.1%})"
        ]
        for layer in self.layers:
            if layer.factorized:
                lines.append(
                    f"  {layer.name}: rank {layer.rank}, params "
                    f"{layer.params_before} -> {layer.params_after}"
                )
            else:
                lines.append(f"  {layer.name}: kept ({layer.reason})")
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"LowRankReport(params_before={self.params_before}, "
            f"params_after={self.params_after}, "
            f"factorized={len(self.factorized)})"
        )
