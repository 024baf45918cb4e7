"""SInGE: neuron relevance by integrated gradients along a removal path."""

import keras
import numpy as np

from keras_neuronprune.criteria._calibrated import CalibratedCriterion
from keras_neuronprune.criteria._calibrated import check_count
from keras_neuronprune.criteria._calibrated import group_structure_slices
from keras_neuronprune.criteria._moved import moved_driver
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.criteria.base_criterion import progress
from keras_neuronprune.utils.gradients import loss_and_gradients


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
class SInGE(CalibratedCriterion):
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

    needs_loss = True
    config_keys = ("steps", "per_channel", "min_samples", "max_samples")

    def __init__(
        self,
        reduction="sum",
        steps=8,
        per_channel=False,
        min_samples=32,
        max_samples=None,
    ):
        steps = check_count(steps, "steps")
        super().__init__(reduction, min_samples, max_samples)
        self.steps = steps
        self.per_channel = bool(per_channel)
        self.last_attributions = None
        self.unsupported = []

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
        """Signed integrated gradients per group channel (before `abs`).

        With `context.verbose` a progress bar counts the removal paths
        (one per group, or per channel with `per_channel=True`), each
        `steps` gradient passes over the calibration batches.
        """
        batches = self.calibration(context)
        model = context.model
        group_slices, self.unsupported = group_structure_slices(
            model, self.prunable_groups(context)
        )
        paths = []
        for group in self.prunable_groups(context):
            slices = group_slices[group.name]
            if slices:
                channels = range(group.size) if self.per_channel else [None]
                paths.extend((group, slices, c) for c in channels)
        result = {}
        verbose = getattr(context, "verbose", 0)
        for group, slices, channel in progress(paths, verbose, "path"):
            values = self._path_integral(
                model,
                slices,
                batches,
                context.loss,
                _path_scale(group.size, channel),
            )
            if channel is None:
                result[group.name] = values
            else:
                result.setdefault(group.name, np.zeros(group.size))
                result[group.name][channel] = values[channel]
        self.last_attributions = result
        return result

    def score(self, context):
        scores = {
            name: check_finite_scores(np.abs(values), name)
            for name, values in self.attributions(context).items()
        }
        groups = self.prunable_groups(context)
        return self.fill_unsupported(scores, groups, self.unsupported)


def _path_scale(size, channel):
    """Per-channel factors at path point `alpha`: every channel, or one."""

    def scale(alpha):
        if channel is None:
            return np.full(size, alpha)
        out = np.ones(size)
        out[channel] = alpha
        return out

    return scale


def __getattr__(name):
    # Deprecated: the driver moved up to `keras_neuronprune.pruning`.
    return moved_driver(
        __name__, name, "singe_prune", "keras_neuronprune.pruning.singe"
    )
