"""SOSP-H: second-order structured saliency with one Hessian-vector product."""

import keras
import numpy as np

from keras_neuronprune.criteria._calibrated import CalibratedCriterion
from keras_neuronprune.criteria._calibrated import group_structure_slices
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.criteria.base_criterion import progress
from keras_neuronprune.utils.gradients import (
    gradient_and_hessian_vector_product,
)


def structure_vectors(slices):
    """Variables touched by `slices` and theta masked to structure entries.

    Returns:
        `(variables, vectors)`: the unique variables and, per variable, its
        value with the entries that belong to no structure set to zero.
    """
    variables, masks = [], {}
    for s in slices:
        key = id(s.variable)
        if key not in masks:
            variables.append(s.variable)
            masks[key] = np.zeros(tuple(s.variable.shape), bool)
        masks[key] |= s.mask(np.zeros(len(s.positions))) == 0.0
    vectors = []
    for v in variables:
        value = np.asarray(v.numpy())
        vectors.append(np.where(masks[id(v)], value, 0).astype(value.dtype))
    return variables, vectors


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class SOSP(CalibratedCriterion):
    """SOSP-H second-order saliency of every structure, ranked globally.

    A structure `s` is one channel of a group: the filters producing it and
    its per-channel BatchNormalization / depthwise parameters (see
    `keras_neuronprune.utils.structures`). With `theta_s` the parameters of
    `s` (zeros elsewhere), `g` the loss gradient, `H` the curvature and
    `theta` the parameters of all prunable structures together, the
    saliency is

        lambda_s = |theta_s^T g| + 1/2 |theta_s^T H theta|

    `H theta` is one Hessian-vector product for the whole network per batch
    (plus the gradient from the same forward pass), so the cost is that of a
    few gradient evaluations whatever the number of structures.

    Documented choices (the paper's code is not public):
    * `H` is the Gauss-Newton matrix by default (`gauss_newton=True`, one
      forward-mode JVP, a loss-only double backprop and two reverse passes),
      as in the paper's SOSP-H; `gauss_newton=False` uses the exact Hessian
      (double backprop).
    * Both absolute values are kept and the first-order term is kept.
    * Group members' inner products are summed *before* the absolute values
      (a structure is the union of its members' parameters); with
      `reduction="mean"` or `"max"` each member is scored separately
      (`|a_m| + 1/2 |b_m|`) and the member scores are reduced instead.
    * Scores are on one scale for all layers: use global ranking.

    Args:
        reduction: "sum" (exact structure saliency), "mean" or "max".
        gauss_newton: Gauss-Newton (True) or exact Hessian (False).
        min_samples: fewest calibration samples accepted.
        max_samples: use at most this many samples.

    Example:
        >>> scores = SOSP().score(ScoringContext(
        ...     model, groups, data, loss="sparse_categorical_crossentropy"))

    Reference:
        Nonnenmacher et al., "SOSP: Efficiently Capturing Global
        Correlations by Second-Order Structured Pruning", ICLR 2022,
        https://arxiv.org/abs/2110.11395
    """

    needs_loss = True
    config_keys = ("gauss_newton", "min_samples", "max_samples")

    def __init__(
        self,
        reduction="sum",
        gauss_newton=True,
        min_samples=64,
        max_samples=None,
    ):
        super().__init__(reduction, min_samples, max_samples)
        self.gauss_newton = bool(gauss_newton)

    def score_batches(self, context, batches, groups):
        model = context.model
        group_slices, unsupported = group_structure_slices(model, groups)
        all_slices = [s for g in groups for s in group_slices[g.name]]
        if not all_slices:
            return self.fill_unsupported({}, groups, unsupported)
        variables, vectors = structure_vectors(all_slices)
        grads = [np.zeros(v.shape) for v in variables]
        hvs = [np.zeros(v.shape) for v in variables]
        total = 0
        for x, y in progress(batches, getattr(context, "verbose", 0), "batch"):
            n = len(y)
            _, g, hv = gradient_and_hessian_vector_product(
                model,
                variables,
                vectors,
                x,
                y,
                context.loss,
                gauss_newton=self.gauss_newton,
            )
            for i in range(len(variables)):
                grads[i] += n * np.asarray(g[i], "float64")
                hvs[i] += n * np.asarray(hv[i], "float64")
            total += n
        index = {id(v): i for i, v in enumerate(variables)}
        scores = {}
        for group in groups:
            if group.name in unsupported:
                continue
            firsts, seconds = [], []
            for s in group_slices[group.name]:
                i = index[id(s.variable)]
                theta = np.asarray(s.variable.numpy(), "float64")
                firsts.append(s.per_channel(theta * grads[i] / total))
                seconds.append(s.per_channel(theta * hvs[i] / total))
            if self.reduction == "sum":
                value = np.abs(np.sum(firsts, 0)) + 0.5 * np.abs(
                    np.sum(seconds, 0)
                )
            else:
                value = self.reduce(
                    [
                        np.abs(a) + 0.5 * np.abs(b)
                        for a, b in zip(firsts, seconds)
                    ]
                )
            scores[group.name] = check_finite_scores(value, group.name)
        return self.fill_unsupported(scores, groups, unsupported)
