"""SInGE: neuron relevance by integrated gradients along a removal path."""

import keras
import numpy as np

from keras_neuronprune.criteria._moved import moved_driver
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.utils.calibration import calibration_batches
from keras_neuronprune.utils.gradients import loss_and_gradients
from keras_neuronprune.utils.structures import structure_slices


class _Shrunk:
    """Scales the entries of some channels' parameters; restores on exit."""

    def __init__(self, slices, scale_per_slice):
        self.slices = slices
        self.scales = scale_per_slice
        self.saved = {}

    def __enter__(self):
        for s in self.slices:
            if id(s.variable) not in self.saved:
                self.saved[id(s.variable)] = (s.variable, s.variable.numpy())
        factors = {}
        for s, scale in zip(self.slices, self.scales):
            key = id(s.variable)
            factors[key] = factors.get(key, 1.0) * s.mask(scale)
        for key, (variable, value) in self.saved.items():
            variable.assign((value * factors[key]).astype(value.dtype))
        return self

    def __exit__(self, *exc):
        for variable, value in self.saved.values():
            variable.assign(value)
        return False


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class SInGE(Criterion):
    """Integrated-gradients relevance of channels along their removal path.

    A channel's parameters `theta_c` (its filters and per-channel BN /
    depthwise parameters, see `keras_neuronprune.utils.structures`) are
    shrunk to zero along the straight path `alpha * theta_c`,
    `alpha: 1 -> 0`, and its relevance is the integrated gradient

        IG_c = integral_0^1 theta_c . grad_{theta_c} L(alpha theta_c) dalpha

    estimated with a midpoint Riemann sum of `steps` points averaged over
    the calibration batches. By the completeness of integrated gradients,
    `IG_c` approximates `L(theta) - L(theta with c removed)` while
    following how the gradient varies on the way; the score is `|IG_c|`.

    Documented choices (the paper's exact path is not public):
    * Linear path with the midpoint rule (`steps` gradient evaluations per
      path point and batch).
    * `per_channel=False` (default): one path per group that shrinks all
      the group's channels together, so a group of any width costs `steps`
      gradient passes; channel `c`'s attribution is its share
      `theta_c . grad_{theta_c}` along that joint path (the attributions of
      a group sum to `L(theta) - L(group removed)`).
      `per_channel=True`: one path per channel (cost multiplied by the
      width), the paper's neuron-wise definition.
    * A structure is the union of its members' parameters: the members'
      dot products are summed before the absolute value (`reduction` is
      not used).
    * The model's variables are scaled in place during scoring and always
      restored (also on error).
    * Scores are in loss units, so they can be ranked globally, as the
      entwined loop (`singe_prune`) does.

    Args:
        steps: Riemann points on the path.
        per_channel: one path per channel instead of per group.
        min_samples: fewest calibration samples.
        max_samples: use at most this many samples.

    Example:
        >>> scores = SInGE().score(ScoringContext(
        ...     model, groups, data, loss="sparse_categorical_crossentropy"))

    Reference:
        Yvinec et al., "SInGE: Sparsity via Integrated Gradients Estimation
        of Neuron Relevance", NeurIPS 2022, https://arxiv.org/abs/2207.04089
    """

    requires_data = True

    def __init__(
        self,
        reduction="sum",
        steps=8,
        per_channel=False,
        min_samples=32,
        max_samples=None,
    ):
        super().__init__(reduction)
        if int(steps) < 1:
            raise ValueError(f"`steps` must be >= 1. Received: steps={steps}")
        self.steps = int(steps)
        self.per_channel = bool(per_channel)
        self.min_samples = int(min_samples)
        self.max_samples = max_samples
        self.last_attributions = None
        self.unsupported = []

    def _batches(self, context):
        if context.loss is None:
            raise ValueError(
                "SInGE needs a loss to differentiate: pass "
                "`ScoringContext(..., loss=...)`. Received: loss=None"
            )
        return calibration_batches(
            context.data,
            context.model,
            "SInGE",
            min_samples=self.min_samples,
            max_samples=self.max_samples,
            needs_targets=True,
        )

    def _path_integral(self, model, slices, batches, loss, channel_scale):
        """Sum over path points of theta_c . grad, per group channel.

        `channel_scale(alpha)` gives the per-channel factor of the path
        point `alpha` (1 = untouched). Gradients are taken w.r.t. the
        group's own variables only: TensorFlow then skips the other layers'
        weight gradients (about 2x faster than differentiating every
        structure variable, at the price of one trace per group).
        """
        variables = []
        for s in slices:
            if all(s.variable is not v for v in variables):
                variables.append(s.variable)
        index = {id(v): i for i, v in enumerate(variables)}
        theta = {
            id(s.variable): np.asarray(s.variable.numpy(), "float64")
            for s in slices
        }
        size = len(slices[0].positions)
        total = np.zeros(size)
        n_total = sum(len(y) for _, y in batches)
        for k in range(self.steps):
            alpha = (k + 0.5) / self.steps
            scale = channel_scale(alpha)
            with _Shrunk(slices, [scale] * len(slices)):
                for x, y in batches:
                    _, grads = loss_and_gradients(model, variables, x, y, loss)
                    for s in slices:
                        i = index[id(s.variable)]
                        contribution = s.per_channel(
                            theta[id(s.variable)] * grads[i]
                        )
                        total += len(y) / n_total * contribution
        return total / self.steps

    def attributions(self, context):
        """Signed integrated gradients per group channel (before `abs`)."""
        batches = self._batches(context)
        model = context.model
        result = {}
        self.unsupported = []
        group_slices = {}
        for group in context.groups:
            if not group.prunable:
                continue
            try:
                group_slices[group.name] = structure_slices(model, group)
            except ValueError:
                group_slices[group.name] = []
            if not group_slices[group.name]:
                self.unsupported.append(group.name)
        for group in context.groups:
            slices = group_slices.get(group.name)
            if not slices:
                continue
            if self.per_channel:
                values = np.zeros(group.size)
                for c in range(group.size):

                    def scale(alpha, c=c):
                        out = np.ones(group.size)
                        out[c] = alpha
                        return out

                    values[c] = self._path_integral(
                        model, slices, batches, context.loss, scale
                    )[c]
            else:
                values = self._path_integral(
                    model,
                    slices,
                    batches,
                    context.loss,
                    lambda alpha: np.full(group.size, alpha),
                )
            result[group.name] = values
        self.last_attributions = result
        return result

    def score(self, context):
        scores = {
            name: check_finite_scores(np.abs(values), name)
            for name, values in self.attributions(context).items()
        }
        groups = [g for g in context.groups if g.prunable]
        return self.fill_unsupported(scores, groups, self.unsupported)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "steps": self.steps,
                "per_channel": self.per_channel,
                "min_samples": self.min_samples,
                "max_samples": self.max_samples,
            }
        )
        return config


def __getattr__(name):
    # Deprecated: the driver moved up to `keras_neuronprune.pruning`.
    return moved_driver(
        __name__, name, "singe_prune", "keras_neuronprune.pruning.singe"
    )
