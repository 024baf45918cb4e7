"""NISP: neuron importance propagated back from the final response layer."""

import warnings

import keras
import numpy as np

from keras_neuronprune.criteria._calibrated import CalibratedCriterion
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.graph import _keras_graph
from keras_neuronprune.utils.features import call_site_map
from keras_neuronprune.utils.features import feature_model
from keras_neuronprune.utils.features import run_feature_model

_RANKINGS = ("inf_fs", "mean_abs")
_MIXERS = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)


def _rank(values):
    """Column-wise ranks (ties get the mean rank), as in Spearman's rho."""
    order = np.argsort(values, axis=0, kind="stable")
    ranks = np.empty_like(values, dtype="float64")
    n = values.shape[0]
    for j in range(values.shape[1]):
        column = values[order[:, j], j]
        r = np.arange(1, n + 1, dtype="float64")
        # Average the ranks of tied values.
        _, start, counts = np.unique(
            column, return_index=True, return_counts=True
        )
        for s, c in zip(start, counts):
            if c > 1:
                r[s : s + c] = r[s : s + c].mean()
        ranks[order[:, j], j] = r
    return ranks


def inf_fs(features, alpha=0.5, factor=0.9):
    """Infinite Feature Selection scores of the columns of `features`.

    Builds the feature graph `A[i, j] = alpha * max(s_i, s_j) +
    (1 - alpha) * (1 - |rho_ij|)` (`s` the standard deviations scaled to
    [0, 1], `rho` Spearman's correlation; constant features have
    correlation 0), sets `r = factor / spectral_radius(A)` and scores
    feature `i` by the `i`-th row sum of `(I - r A)^-1 - I`, the total
    weight of all paths of any length starting at `i`.

    Args:
        features: array `(N, F)` of responses.
        alpha: mix between dispersion and decorrelation.
        factor: `r * spectral_radius(A)`, in (0, 1).

    Returns:
        Float64 array `(F,)`, higher = more important.

    Reference:
        Roffo, Melzi, Cristani, "Infinite Feature Selection", ICCV 2015.
    """
    x = np.asarray(features, "float64")
    n, f = x.shape
    if not np.all(np.isfinite(x)):
        # Reported by `check_finite_scores` with the groups' names.
        return np.full(f, np.nan)
    std = x.std(axis=0)
    scaled = std / std.max() if std.max() > 0 else std
    ranks = _rank(x)
    ranks -= ranks.mean(axis=0)
    norms = np.linalg.norm(ranks, axis=0)
    safe = np.where(norms > 0, norms, 1.0)
    corr = (ranks.T @ ranks) / np.outer(safe, safe)
    corr[norms == 0, :] = 0.0
    corr[:, norms == 0] = 0.0
    a = alpha * np.maximum.outer(scaled, scaled) + (1 - alpha) * (
        1 - np.abs(corr)
    )
    rho = np.max(np.abs(np.linalg.eigvalsh(a)))
    if rho == 0:
        return np.zeros(f)
    r = factor / rho
    s = np.linalg.inv(np.eye(f) - r * a) - np.eye(f)
    return s.sum(axis=1)


def _abs_sum_spatial(kernel, keep_last=2):
    k = np.abs(np.asarray(kernel, "float64"))
    return k.reshape(-1, *k.shape[-keep_last:]).sum(axis=0)


def _channels(tensor):
    shape = tuple(tensor.shape)
    return shape[-1] if len(shape) >= 2 else None


def propagate_through(operation, inputs, output_score, output_tensor):
    """Channel importances of each input given the output's importances.

    Channel-level NISP rule: a score is the total importance of a channel
    over its spatial positions, so a convolution maps `s_in[c] =
    sum_o (sum over the kernel window of |W[..., c, o]|) * s_out[o]` (the
    NISP conv rule) and spatial layers (pooling, padding, activation) are
    identities.

    Args:
        operation: the Keras layer or operation.
        inputs: list of its symbolic input tensors.
        output_score: array `(channels_out,)`.
        output_tensor: its symbolic output tensor.

    Returns:
        List, one per input, of arrays or None (input not propagated).

    Raises:
        ValueError: when channels cannot be mapped (an unsupported
            concatenation axis or reshape, mismatched channel counts).
    """
    s = np.asarray(output_score, "float64")
    name = getattr(operation, "name", type(operation).__name__)
    if isinstance(operation, keras.layers.Dense):
        return [np.abs(operation.kernel.numpy()) @ s]
    if isinstance(
        operation,
        (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D),
    ):
        point = _abs_sum_spatial(operation.pointwise_kernel.numpy())
        mid = point @ s
        depth = _abs_sum_spatial(operation.depthwise_kernel.numpy())
        return [(depth * mid.reshape(depth.shape)).sum(axis=1)]
    if isinstance(
        operation,
        (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D),
    ):
        depth = _abs_sum_spatial(operation.kernel.numpy())
        return [(depth * s.reshape(depth.shape)).sum(axis=1)]
    if isinstance(
        operation,
        (
            keras.layers.Conv1DTranspose,
            keras.layers.Conv2DTranspose,
            keras.layers.Conv3DTranspose,
        ),
    ):
        return [_abs_sum_spatial(operation.kernel.numpy()).T @ s]
    if isinstance(
        operation,
        (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D),
    ):
        a = _abs_sum_spatial(operation.kernel.numpy())  # (Cin/g, O)
        groups = getattr(operation, "groups", 1)
        per_in, out = a.shape
        per_out = out // groups
        result = np.zeros(per_in * groups)
        for g in range(groups):
            cols = slice(g * per_out, (g + 1) * per_out)
            result[g * per_in : (g + 1) * per_in] = a[:, cols] @ s[cols]
        return [result]
    if isinstance(operation, keras.layers.BatchNormalization):
        var = np.asarray(operation.moving_variance.numpy(), "float64")
        scale = 1.0 / np.sqrt(var + operation.epsilon)
        if operation.scale:
            scale = scale * np.abs(np.asarray(operation.gamma.numpy()))
        return [scale * s]
    if isinstance(operation, keras.layers.Concatenate):
        axis = operation.axis
        if axis not in (-1, len(output_tensor.shape) - 1):
            raise ValueError(
                f"NISP supports concatenation on the channel axis only; "
                f"layer {name!r} concatenates on axis {axis}."
            )
        sizes = [_channels(t) for t in inputs]
        return list(np.split(s, np.cumsum(sizes)[:-1]))
    if isinstance(operation, (keras.layers.Flatten, keras.layers.Reshape)):
        return [_reshape_rule(inputs[0], output_tensor, s)]
    if isinstance(operation, keras.layers.Average):
        return [s / len(inputs) for _ in inputs]
    weights = {
        w.name.split("/")[-1]: w for w in getattr(operation, "weights", [])
    }
    if "gate" in weights and "channel_mask" in weights:
        # keras_neuronprune.layers.ChannelGate: y = x * gate * mask.
        gate = np.asarray(weights["gate"].numpy(), "float64")
        mask = np.asarray(weights["channel_mask"].numpy(), "float64")
        return [np.abs(gate * mask) * s]
    if any(w.trainable for w in weights.values()):
        warnings.warn(
            f"NISP does not know how importance flows through layer {name!r} "
            f"({type(operation).__name__}, which has weights); it stops "
            "there, and groups reached only through it are not measured.",
            stacklevel=2,
        )
        return [None for _ in inputs]
    out_c = _channels(output_tensor)
    result = []
    for t in inputs:
        c = _channels(t)
        if out_c is not None and c == out_c:
            result.append(s)  # pooling, activation, merge, padding...
        elif c in (None, 1):
            result.append(None)  # broadcast scalar operand
        else:
            raise ValueError(
                f"NISP cannot map the {out_c} output channels of layer "
                f"{name!r} ({type(operation).__name__}) to its {c} input "
                "channels."
            )
    return result


def _reshape_rule(input_tensor, output_tensor, s):
    in_shape = tuple(input_tensor.shape)[1:]
    out_shape = tuple(output_tensor.shape)[1:]
    if any(d is None for d in in_shape + out_shape):
        raise ValueError(
            "NISP needs static shapes around Reshape/Flatten; received "
            f"{in_shape} -> {out_shape}."
        )
    total = int(np.prod(in_shape))
    flat = np.arange(total)
    c_in, c_out = in_shape[-1], out_shape[-1]
    per_out = total // c_out
    values = s[flat % c_out] / per_out
    return np.bincount(flat % c_in, weights=values, minlength=c_in)


def final_response_layer(model, sites):
    """The layer whose input is the final response layer (FRL).

    The last Dense or Conv layer whose output is a model output; its input
    is the FRL (the second-to-last layer's responses).
    """
    outputs = {id(t) for t in model.outputs}
    for name in reversed(list(sites)):
        for site in sites[name]:
            if isinstance(site.operation, _MIXERS) and any(
                id(t) in outputs for t in site.outputs
            ):
                return name
    raise ValueError(
        "NISP could not find the final classification layer (a Dense or Conv "
        "layer producing a model output); pass `frl_layer=`."
    )


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class NISP(CalibratedCriterion):
    """Neuron Importance Score Propagation.

    1. The responses of the final response layer (FRL, the input of the
       final classifier) on the calibration data are ranked by Infinite
       Feature Selection (`inf_fs`; `ranking="mean_abs"` uses the mean
       absolute response instead).
    2. The FRL importances are propagated backwards through the whole graph
       with `s_in = |W|^T s_out` (`propagate_through`): convolutions sum
       `|W|` over the kernel window, BatchNormalization scales by
       `|gamma| / sqrt(var + eps)` (it is linear at inference), residual
       additions copy the score to every branch, concatenations split it,
       Flatten/Reshape map it back to channels, activations and pooling
       pass it through. Scores reaching a tensor from several consumers
       (skip connections) add up.
    3. A group's score is its producers' output scores, combined with
       `reduction` (sum by default: the total importance of the channel
       over every tensor it is written to).

    Documented choices: the Inf-FS parameters (`alpha`, `factor`) follow
    Roffo et al.; FRL responses with spatial dimensions are averaged over
    space first; BN scaling is applied (the paper treats the network as
    alternating linear maps and nonlinearities). NISP is a local
    criterion in the paper (per-layer ratios), but its scores share one
    scale (importance of the same FRL), so global ranking is possible.

    Args:
        reduction: combination of a group's producers' scores.
        ranking: "inf_fs" or "mean_abs".
        frl_layer: name of the final layer whose input is the FRL
            (default: found automatically).
        alpha, factor: Inf-FS parameters.
        min_samples: fewest calibration samples (Inf-FS estimates
            correlations between FRL features).
        max_samples: use at most this many samples.

    Example:
        >>> scores = NISP().score(ScoringContext(model, groups, data))

    Reference:
        Yu et al., "NISP: Pruning Networks using Neuron Importance Score
        Propagation", CVPR 2018, https://arxiv.org/abs/1711.05908
    """

    config_keys = (
        "ranking",
        "frl_layer",
        "alpha",
        "factor",
        "min_samples",
        "max_samples",
    )

    def __init__(
        self,
        reduction="sum",
        ranking="inf_fs",
        frl_layer=None,
        alpha=0.5,
        factor=0.9,
        min_samples=16,
        max_samples=None,
    ):
        super().__init__(reduction, min_samples, max_samples)
        if ranking not in _RANKINGS:
            raise ValueError(
                f"`ranking` must be one of {_RANKINGS}. Received: "
                f"ranking={ranking!r}"
            )
        if not 0 < factor < 1:
            raise ValueError(
                f"`factor` must be in (0, 1). Received: factor={factor}"
            )
        self.ranking = ranking
        self.frl_layer = frl_layer
        self.alpha = alpha
        self.factor = factor

    def frl_scores(self, responses):
        """FRL importances from responses `(N, ..., F)`."""
        x = np.asarray(responses, "float64")
        x = x.reshape(x.shape[0], -1, x.shape[-1]).mean(axis=1)
        if self.ranking == "mean_abs":
            return np.abs(x).mean(axis=0)
        return inf_fs(x, self.alpha, self.factor)

    def score_batches(self, context, batches, groups):
        model = context.model
        functional, sites = call_site_map(model)
        final = self.frl_layer or final_response_layer(functional, sites)
        if final not in sites:
            raise ValueError(
                f"`frl_layer` must name a layer of the model. Received: "
                f"frl_layer={final!r}"
            )
        frl_tensor = sites[final][0].inputs[0]
        responses = np.concatenate(
            [
                out[0]
                for out in run_feature_model(
                    feature_model(model, [frl_tensor]), batches
                )
            ]
        )
        scores = self.propagate(model, frl_tensor, self.frl_scores(responses))
        return self.group_scores(context.groups, sites, scores)

    @staticmethod
    def propagate(model, frl_tensor, frl_score):
        """Propagates FRL scores to every tensor upstream of it.

        Returns:
            dict `id(tensor)` -> channel scores.
        """
        functional, _ = call_site_map(model)
        scores = {id(frl_tensor): np.asarray(frl_score, "float64")}
        for site in reversed(list(_keras_graph.call_sites(functional))):
            out_scores = [scores.get(id(t)) for t in site.outputs]
            if all(o is None for o in out_scores):
                continue
            if len(site.outputs) != 1:
                raise ValueError(
                    f"NISP supports single-output layers only; layer "
                    f"{site.operation.name!r} has {len(site.outputs)}."
                )
            if isinstance(site.operation, keras.Model):
                raise ValueError(
                    f"NISP cannot propagate through nested model "
                    f"{site.operation.name!r}."
                )
            inputs = propagate_through(
                site.operation, site.inputs, out_scores[0], site.outputs[0]
            )
            for tensor, value in zip(site.inputs, inputs):
                if value is None:
                    continue
                key = id(tensor)
                scores[key] = scores.get(key, 0.0) + value
        return scores

    def group_scores(self, groups, sites, tensor_scores):
        """Group scores from tensor scores (see the class docstring)."""
        result, unsupported = {}, []
        for group in groups:
            if not group.prunable:
                continue
            member_scores = []
            for kind in ("producer", "channelwise"):
                for m in group.members:
                    if (
                        m.kind != kind
                        or m.role != "output"
                        or m.layer not in sites
                    ):
                        continue
                    tensor = sites[m.layer][0].outputs[0]
                    s = tensor_scores.get(id(tensor))
                    if s is None:
                        continue
                    positions = np.asarray(m.channels).reshape(group.size, -1)
                    member_scores.append(s[positions].sum(axis=1))
                if member_scores:
                    break
            if not member_scores:
                # It does not feed the final response layer (or only
                # through a layer NISP cannot propagate through).
                unsupported.append(group.name)
                continue
            result[group.name] = check_finite_scores(
                self.reduce(member_scores), group.name
            )
        prunable = [g for g in groups if g.prunable]
        return self.fill_unsupported(result, prunable, unsupported)
