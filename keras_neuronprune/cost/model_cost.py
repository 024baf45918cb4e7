"""Cost of a whole model: totals plus the per-layer breakdown."""

import collections
import dataclasses

from keras_neuronprune.cost.layer_cost import LayerCost


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _fmt_shape(shapes):
    if not shapes:
        return "-"
    text = str(tuple(shapes[0]))
    return text + (f" +{len(shapes) - 1}" if len(shapes) > 1 else "")


@dataclasses.dataclass(frozen=True)
class ModelCost:
    """Parameter and FLOP count of a model, returned by `count_cost`.

    Attributes:
        name: the model name.
        params: number of weight scalars of the model, trainable and
            non-trainable (equals `model.count_params()`).
        flops: FLOPs of one forward pass at batch size 1 (a multiply-add
            counts 2).
        layers: tuple of `LayerCost`, one per layer call, in graph order.
        uncounted: names of layers with no FLOP rule (counted as 0 FLOPs);
            give them with `keras_neuronprune.register_layer_handler`.
    """

    name: str
    params: int
    flops: int
    layers: tuple[LayerCost, ...]
    uncounted: tuple[str, ...] = ()

    @property
    def macs(self):
        """Half the FLOPs: the usual "multiply-accumulate" figure."""
        return self.flops / 2

    def layer(self, name):
        """Returns the first `LayerCost` named `name`.

        Raises:
            KeyError: if no row has that name.
        """
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"No layer named {name!r} in the cost of {self.name}.")

    def flops_by_class(self):
        """Returns `{class_name: flops}`, largest first."""
        totals = collections.Counter()
        for row in self.layers:
            totals[row.class_name] += row.flops
        return dict(totals.most_common())

    def to_dict(self):
        """Returns a JSON-serialisable dict (totals and per-layer rows)."""
        return {
            "name": self.name,
            "params": self.params,
            "flops": self.flops,
            "layers": [row.to_dict() for row in self.layers],
            "uncounted": list(self.uncounted),
        }

    def __str__(self):
        header = ("Layer", "Type", "Output shape", "Ch in>out", "Params")
        header += ("FLOPs", "%")
        rows = [header]
        total = self.flops or 1
        for row in self.layers:
            chans = f"{row.channels_in}>{row.channels_out}"
            name = row.name
            if row.call_index:
                name += f" (call {row.call_index})"
            rows.append(
                (
                    name,
                    row.class_name,
                    _fmt_shape(row.output_shapes),
                    chans,
                    f"{row.params:,}",
                    f"{row.flops:,}",
                    f"{100 * row.flops / total:.1f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        right = {3, 4, 5, 6}

        def fmt(r):
            cells = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            ]
            return "  ".join(cells).rstrip()

        rule = "-" * len(fmt(header))
        lines = [f"Cost of {self.name!r} (batch size 1)", rule, fmt(header)]
        lines.append(rule)
        lines.extend(fmt(r) for r in rows[1:])
        lines.append(rule)
        lines.append(
            f"Total params: {self.params:,} ({_human(self.params)})   "
            f"Total FLOPs: {self.flops:,} ({_human(self.flops)})"
        )
        if self.uncounted:
            lines.append(
                "No FLOP rule (counted as 0): " + ", ".join(self.uncounted)
            )
        return "\n".join(lines)
