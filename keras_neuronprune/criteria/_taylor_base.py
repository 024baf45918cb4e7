"""Shared machinery of the gradient (Taylor) criteria (private).

Where the gradient is read ("gate points"): for each prunable group, the
outputs of its BatchNormalization members (a gate after BatchNorm, as
Taylor 2019), or, without BN, of its producers. When the model has a
`ChannelGate` named `f"{layer}{GATE_SUFFIX}"` after such a layer (what
`prune_structured` inserts) its output is read instead, so channels that
are masked already score 0.

For a point with output `a` (batch `N`, channel `c` at the layer's channel
axis) and the gradient `G = dL/da` of the batch-mean loss, the gradient of
a per-channel gate `w_c = 1` multiplying `a` is
`dL/dw_c = sum_{n, spatial} a * G`, and example `n`'s own gate gradient is
`N * sum_{spatial} a_n * G_n` (the mean loss weights each example's loss by
`1/N`). Reading the gate's output instead of the layer's multiplies both by
the gate value `w_c`, i.e. gives `w * dL/dw`, the Taylor term. A group
channel that appears at several positions (r > 1) sums them.
"""

import keras
import numpy as np

from keras_neuronprune.core.surgery import try_find_layer
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.criteria.base_criterion import check_normalize
from keras_neuronprune.criteria.base_criterion import normalize_scores
from keras_neuronprune.criteria.base_criterion import progress
from keras_neuronprune.layers import GATE_SUFFIX
from keras_neuronprune.layers import ChannelGate


def channel_axis(layer):
    axis = getattr(layer, "axis", None)
    if isinstance(axis, int):
        return axis
    if getattr(layer, "data_format", None) == "channels_first":
        return 1
    return -1


def gate_points(group, model):
    """`(member, name of the layer whose output is read)` for a group."""
    outputs = [m for m in group.members if m.role == "output"]
    bns = [
        m
        for m in outputs
        if isinstance(
            try_find_layer(model, m.layer), keras.layers.BatchNormalization
        )
    ]
    chosen = bns or [m for m in outputs if m.kind == "producer"]
    points = []
    for member in chosen:
        if "/" in member.layer:
            # The gradient helper reads top-level layers only.
            continue
        gate_name = member.layer + GATE_SUFFIX
        gate = try_find_layer(model, gate_name)
        name = gate_name if isinstance(gate, ChannelGate) else member.layer
        if try_find_layer(model, name) is not None:
            points.append((member, name))
    return points


def per_example_gate_gradients(activation, gradient, axis, channels):
    """`(E, M)`: per-example gate gradients `(N, size)` and positions `M`."""
    a = np.moveaxis(np.asarray(activation, "float64"), axis, -1)
    g = np.moveaxis(np.asarray(gradient, "float64"), axis, -1)
    n, c = a.shape[0], a.shape[-1]
    prod = (a * g).reshape(n, -1, c)
    spatial = prod.shape[1]
    per_position = n * prod.sum(axis=1)  # (N, C)
    positions = np.asarray(channels).reshape(len(channels), -1)
    return per_position[:, positions].sum(axis=2), spatial


class GateTaylorBase(Criterion):
    """Scores groups from per-example gate gradients (base class).

    Subclasses implement `_batch_scores(E, M)` -> per-channel scores of one
    batch and `_combine(list of (scores, N))`.
    """

    requires_data = True
    default_normalize = "none"
    config_keys = ("normalize", "momentum", "max_samples")

    def __init__(
        self, reduction="sum", normalize=None, momentum=0.0, max_samples=None
    ):
        super().__init__(reduction)
        if normalize is None:
            normalize = self.default_normalize
        self.normalize = check_normalize(normalize)
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1). Received: momentum={momentum}"
            )
        self.momentum = momentum
        if max_samples is not None and int(max_samples) < 1:
            raise ValueError(
                "`max_samples` must be None or >= 1. "
                f"Received: max_samples={max_samples!r}"
            )
        self.max_samples = None if max_samples is None else int(max_samples)
        self._average = {}

    def supports(self, group, model):
        return bool(gate_points(group, model))

    def _batch_scores(self, per_example, spatial):
        raise NotImplementedError

    def score(self, context):
        from keras_neuronprune.utils.calibration import calibration_batches
        from keras_neuronprune.utils.gradients import activations_and_gradients

        name = type(self).__name__
        model = context.model
        if context.data is None:
            raise ValueError(
                f"`data` is required: {name} ({self.alias!r}) scores channels "
                "from gradients on calibration batches. Pass "
                "`ScoringContext(..., data=batches)`. Received: data=None"
            )
        if context.loss is None:
            raise ValueError(
                f"`loss` is required: {name} differentiates the loss. Pass "
                "`ScoringContext(..., loss=...)`. Received: loss=None"
            )
        batches = calibration_batches(
            context.data,
            model,
            name,
            max_samples=self.max_samples,
            needs_targets=True,
        )
        groups = self.prunable_groups(context)
        points = {g.name: gate_points(g, model) for g in groups}
        names = sorted({n for pts in points.values() for _, n in pts})
        axes = {n: channel_axis(try_find_layer(model, n)) for n in names}
        sums = {}
        total = 0
        for x, y in progress(batches, getattr(context, "verbose", 0), "batch"):
            if not names:
                break
            acts, grads = activations_and_gradients(
                model, names, x, y, context.loss
            )
            batch = None
            for group in groups:
                for i, (member, point) in enumerate(points[group.name]):
                    per_example, spatial = per_example_gate_gradients(
                        acts[point], grads[point], axes[point], member.channels
                    )
                    batch = per_example.shape[0]
                    value = self._batch_scores(per_example, spatial)
                    key = (group.name, i)
                    sums[key] = sums.get(key, 0.0) + batch * value
            total += batch or 0
        scores, missing = {}, set()
        for group in groups:
            members = [
                normalize_scores(sums[(group.name, i)] / total, self.normalize)
                for i in range(len(points[group.name]))
            ]
            if not members:
                missing.add(group.name)
                continue
            value = self.reduce(members)
            if self.momentum > 0 and group.name in self._average:
                previous = self._average[group.name]
                if previous.shape == value.shape:
                    value = (
                        self.momentum * previous + (1 - self.momentum) * value
                    )
            self._average[group.name] = value
            scores[group.name] = check_finite_scores(value, group.name)
        return self.fill_unsupported(scores, groups, missing)

    def reset(self):
        """Forgets the importances averaged across calls (`momentum`)."""
        self._average = {}
