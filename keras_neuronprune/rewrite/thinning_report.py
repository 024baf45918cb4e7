"""`ThinningReport`: channels, parameters and FLOPs of every layer, before
and after thinning."""

import dataclasses


@dataclasses.dataclass
class LayerChange:
    name: str
    class_name: str
    channels_before: int | None
    channels_after: int | None
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int


class ThinningReport:
    """Per-layer and total cost of a model before and after thinning.

    Attributes:
        layers: list of `LayerChange` (graph order).
        params_before, params_after, flops_before, flops_after: totals
            (FLOPs count a multiply-add as 2, batch size 1).
    """

    def __init__(self, layers, before, after):
        self.layers = layers
        self.params_before = before.params
        self.params_after = after.params
        self.flops_before = before.flops
        self.flops_after = after.flops

    @classmethod
    def compare(cls, model, new_model):
        from keras_neuronprune.cost import count_cost

        try:
            before, after = count_cost(model), count_cost(new_model)
        except ValueError:
            # Undefined spatial sizes: FLOPs are unknown, params still count.
            before, after = _ParamsOnly(model), _ParamsOnly(new_model)
        after_by_name = {c.name: c for c in after.layers}
        rows = []
        for b in before.layers:
            a = after_by_name.get(b.name, b)
            rows.append(
                LayerChange(
                    b.name,
                    b.class_name,
                    b.channels_out,
                    a.channels_out,
                    b.params,
                    a.params,
                    b.flops,
                    a.flops,
                )
            )
        return cls(rows, before, after)

    @property
    def changed(self):
        return [
            r
            for r in self.layers
            if r.channels_before != r.channels_after
            or r.params_before != r.params_after
        ]

    def to_dict(self):
        return {
            "params_before": self.params_before,
            "params_after": self.params_after,
            "flops_before": self.flops_before,
            "flops_after": self.flops_after,
            "layers": [dataclasses.asdict(r) for r in self.layers],
        }

    def __str__(self):
        def ratio(a, b):
            return f"{a / b:.3f}" if a is not None and b else "-"

        def num(a):
            return "unknown" if a is None else f"{a:,}"

        lines = [
            f"{'layer':<40} {'class':<22} {'channels':>13} "
            f"{'params':>21} {'FLOPs':>25}"
        ]
        for r in self.changed:
            ch = f"{r.channels_before}->{r.channels_after}"
            pa = f"{r.params_before}->{r.params_after}"
            fl = f"{r.flops_before}->{r.flops_after}"
            lines.append(
                f"{r.name[:40]:<40} {r.class_name[:22]:<22} {ch:>13} "
                f"{pa:>21} {fl:>25}"
            )
        lines.append(
            f"total params {self.params_before:,} -> {self.params_after:,} "
            f"(x{ratio(self.params_after, self.params_before)}), FLOPs "
            f"{num(self.flops_before)} -> {num(self.flops_after)} "
            f"(x{ratio(self.flops_after, self.flops_before)})"
        )
        return "\n".join(lines)


class _ParamsOnly:
    """Cost stand-in for models whose FLOPs depend on an unknown size."""

    def __init__(self, model):
        self.params = model.count_params()
        self.flops = None
        self.layers = []
