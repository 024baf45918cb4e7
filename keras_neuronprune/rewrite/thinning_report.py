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


@dataclasses.dataclass
class GroupChange:
    """Channels of one thinned channel group."""

    name: str
    channels_before: int
    channels_after: int


class ThinningReport:
    """Total, per-group and per-layer cost of a model before and after
    thinning.

    `str(report)` (and `report.summary()`) leads with the totals, then one
    line per thinned channel group; `report.table()` is the full per-layer
    table. Numbers carry thousands separators.

    Attributes:
        layers: list of `LayerChange` (graph order).
        groups: list of `GroupChange`, one per thinned group (graph order;
            empty when the report was built without groups).
        model_name: name of the original model.
        params_before, params_after, flops_before, flops_after: totals
            (FLOPs count a multiply-add as 2, batch size 1; None when the
            model's spatial size is undefined).

    Example:

    ```python
    thin, report = keras_neuronprune.thin_model(model, keep)
    print(report)          # totals and channels per group
    print(report.table())  # every changed layer
    ```
    """

    def __init__(self, layers, before, after, groups=None, model_name=None):
        self.layers = layers
        self.groups = list(groups or [])
        self.model_name = model_name
        self.params_before = before.params
        self.params_after = after.params
        self.flops_before = before.flops
        self.flops_after = after.flops

    @classmethod
    def compare(cls, model, new_model, groups=None):
        """Builds the report of `model` -> `new_model`.

        Args:
            model: the original model.
            new_model: the thinned model.
            groups: optional list of `(name, channels_before,
                channels_after)` for the thinned groups.
        """
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
        changes = [GroupChange(*g) for g in (groups or [])]
        return cls(rows, before, after, changes, getattr(model, "name", None))

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
            "model": self.model_name,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "flops_before": self.flops_before,
            "flops_after": self.flops_after,
            "groups": [dataclasses.asdict(g) for g in self.groups],
            "layers": [dataclasses.asdict(r) for r in self.layers],
        }

    def totals(self):
        """One line: parameters and FLOPs before -> after, with ratios."""
        name = f"{self.model_name}: " if self.model_name else ""
        return (
            f"{name}parameters {_num(self.params_before)} -> "
            f"{_num(self.params_after)} "
            f"(x{_ratio(self.params_after, self.params_before)}), FLOPs "
            f"{_num(self.flops_before)} -> {_num(self.flops_after)} "
            f"(x{_ratio(self.flops_after, self.flops_before)})"
        )

    def summary(self, max_groups=20, more="report.table()"):
        """Totals, then channels per thinned group (the compact view).

        Args:
            max_groups: most group lines shown (None: all of them).
            more: how the reader gets the per-layer table (named in the
                last line).

        Returns:
            A multi-line string.
        """
        lines = [self.totals()]
        if not self.groups:
            lines.append(
                f"{len(self.changed)} layers changed; {more} lists them"
            )
            return "\n".join(lines)
        before = sum(g.channels_before for g in self.groups)
        after = sum(g.channels_after for g in self.groups)
        lines.append(
            f"{len(self.groups)} channel groups thinned: {before:,} -> "
            f"{after:,} channels (x{_ratio(after, before)})"
        )
        shown = self.groups if max_groups is None else self.groups[:max_groups]
        width = max(len("group"), *(len(g.name[:48]) for g in shown))
        left = max(len(f"{g.channels_before:,}") for g in shown)
        right = max(len(f"{g.channels_after:,}") for g in shown)
        lines.append(f"  {'group':<{width}}  channels")
        for g in shown:
            lines.append(
                f"  {g.name[:48]:<{width}}  {g.channels_before:>{left},} -> "
                f"{g.channels_after:>{right},}"
            )
        hidden = len(self.groups) - len(shown)
        tail = f"  ... {hidden} more groups; " if hidden else "  "
        lines.append(tail + f"{more} lists every changed layer")
        return "\n".join(lines)

    def table(self):
        """The full per-layer table (changed layers), then the totals."""
        rows = [("layer", "class", "channels", "params", "FLOPs")]
        for r in self.changed:
            rows.append(
                (
                    r.name[:40],
                    r.class_name[:22],
                    f"{_num(r.channels_before)} -> {_num(r.channels_after)}",
                    f"{_num(r.params_before)} -> {_num(r.params_after)}",
                    f"{_num(r.flops_before)} -> {_num(r.flops_after)}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = []
        for row in rows:
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [v.rjust(w) for v, w in zip(row[2:], widths[2:])]
            lines.append("  ".join(cells).rstrip())
        lines.append("total " + self.totals())
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def _num(a):
    return "unknown" if a is None else f"{a:,}"


def _ratio(a, b):
    return f"{a / b:.3f}" if a is not None and b else "-"


class _ParamsOnly:
    """Cost stand-in for models whose FLOPs depend on an unknown size."""

    def __init__(self, model):
        self.params = model.count_params()
        self.flops = None
        self.layers = []
