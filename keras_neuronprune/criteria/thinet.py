"""ThiNet: channel selection by next-layer reconstruction error."""

import keras
import numpy as np

from keras_neuronprune.core.surgery import layer_by_name
from keras_neuronprune.criteria._calibrated import CalibratedCriterion
from keras_neuronprune.criteria._calibrated import check_count
from keras_neuronprune.criteria._moved import moved_driver
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.utils.features import call_site_map
from keras_neuronprune.utils.features import feature_model
from keras_neuronprune.utils.features import member_tensor
from keras_neuronprune.utils.features import run_feature_model
from keras_neuronprune.utils.patches import patch_contributions
from keras_neuronprune.utils.patches import sample_locations
from keras_neuronprune.utils.patches import supports


def greedy_removal_order(gram):
    """ThiNet's greedy selection on a Gram matrix of channel contributions.

    With `G[i, j] = sum_samples xhat_i xhat_j`, the reconstruction error of
    removing the set T is `sum_samples (sum_{j in T} xhat_j)^2 = 1^T G_TT 1`.
    Starting from T = {}, the channel whose addition increases it least is
    added, until every channel is in T. The sets are nested, so the first
    `k` channels of the order are ThiNet's removal set for any `k`.

    Args:
        gram: symmetric array `(C, C)`.

    Returns:
        `(order, errors)`: int array of channels in removal order and the
        error of T after each addition.
    """
    gram = np.asarray(gram, "float64")
    c = gram.shape[0]
    remaining = list(range(c))
    cross = np.zeros(c)  # sum_{i in T} G[i, j]
    value = 0.0
    order, errors = [], []
    for _ in range(c):
        candidates = np.array(remaining)
        increase = 2.0 * cross[candidates] + gram[candidates, candidates]
        best = int(candidates[int(np.argmin(increase))])
        value += float(2.0 * cross[best] + gram[best, best])
        cross += gram[best]
        remaining.remove(best)
        order.append(best)
        errors.append(value)
    return np.array(order, "int64"), np.array(errors)


def least_squares_scales(gram, keep):
    """ThiNet's rescaling of the kept channels.

    Minimises `sum_samples (y - sum_{k in keep} w_k xhat_k)^2` where
    `y = sum_all xhat` is the group's full contribution: the normal
    equations are `G_KK w = G_K. 1`.

    Returns:
        Array `(len(keep),)` of scales (1 means unchanged).
    """
    gram = np.asarray(gram, "float64")
    keep = np.asarray(keep)
    a = gram[np.ix_(keep, keep)]
    b = gram[keep].sum(axis=1)
    ridge = 1e-10 * max(np.trace(a), 1e-30)
    return np.linalg.solve(a + ridge * np.eye(len(keep)), b)


def consumer_members(model, group):
    """Consumer members of a group that ThiNet can reconstruct."""
    members = []
    for m in group.members:
        if m.kind != "consumer" or m.role != "input" or "/" in m.layer:
            continue
        if supports(layer_by_name(model, m.layer)):
            members.append(m)
    return members


def consumer_grams(
    model, groups, batches, samples_per_image=10, seed=0, normalize=True
):
    """Gram matrices of the group channels' contributions to each consumer.

    Returns:
        dict group name -> list of `(member, gram)`; with `normalize`, each
        gram is divided by the consumer's total squared pre-bias output
        over the sampled locations, so consumers of different scales weigh
        equally in a joint selection.
    """
    rng = np.random.default_rng(seed)
    _, sites = call_site_map(model)
    tensors, index_of, plan = [], {}, {}
    for group in groups:
        entries = []
        for member in consumer_members(model, group):
            tensor = member_tensor(model, member, sites)
            if id(tensor) not in index_of:
                index_of[id(tensor)] = len(tensors)
                tensors.append(tensor)
            entries.append((member, index_of[id(tensor)]))
        plan[group.name] = entries
    if not tensors:
        return {g.name: [] for g in groups}
    grams = {
        name: [np.zeros((g.size, g.size)) for _ in entries]
        for g in groups
        for name, entries in [(g.name, plan[g.name])]
    }
    energy = {name: [0.0 for _ in entries] for name, entries in plan.items()}
    for outputs in run_feature_model(feature_model(model, tensors), batches):
        for group in groups:
            for k, (member, j) in enumerate(plan[group.name]):
                layer = layer_by_name(model, member.layer)
                x = outputs[j]
                locations = sample_locations(
                    layer, x.shape, samples_per_image, rng
                )
                contrib = patch_contributions(layer, x, locations)
                positions = np.asarray(member.channels).reshape(group.size, -1)
                per_channel = contrib[:, positions, :].sum(axis=2)  # (S,g,O)
                flat = per_channel.transpose(1, 0, 2).reshape(group.size, -1)
                grams[group.name][k] += flat @ flat.T
                energy[group.name][k] += float(np.sum(contrib.sum(axis=1) ** 2))
    result = {}
    for group in groups:
        entries = []
        for k, (member, _) in enumerate(plan[group.name]):
            gram = grams[group.name][k]
            if normalize:
                gram = gram / max(energy[group.name][k], 1e-30)
            entries.append((member, gram))
        result[group.name] = entries
    return result


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class ThiNet(CalibratedCriterion):
    """ThiNet: keep the channels that best reconstruct the next layer.

    For every prunable group, the contribution `xhat_c` of each group
    channel to the output of each consuming Conv/Dense layer is sampled at
    `samples_per_image` random output locations per calibration image (all
    output channels at each location). Channels are then removed greedily,
    each time the one that increases the reconstruction error
    `sum (sum_{j removed} xhat_j)^2` least (see `greedy_removal_order`).

    Documented choices:
    * Scores are ranks: the channel removed first by the greedy selection
      scores 1, the last `size`. Because the greedy sets are nested, pruning
      any number of channels by lowest score removes exactly ThiNet's set.
      Ranks of different groups are not comparable: use per-group (local)
      ratios, as ThiNet does.
    * A group with several consumers (residual streams, concatenation
      outputs read by many layers) is selected on the sum of the consumers'
      errors, each normalised by that consumer's sampled output energy;
      `reduction` is therefore not used.
    * Groups with no supported consumer (only Conv with `groups > 1`,
      transposed convolutions or nested models read them) cannot be
      measured: they get the largest score and a warning (see
      `Criterion.fill_unsupported`).
    * The least-squares rescale of the kept channels belongs to
      `keras_neuronprune.pruning.thinet_prune`, which folds it into the
      consumers' kernels.

    Args:
        samples_per_image: output locations sampled per image (ThiNet
            samples ~10).
        min_samples: fewest calibration images accepted.
        max_samples: use at most this many images.
        seed: seed of the location sampling.

    Example:
        >>> scores = ThiNet().score(ScoringContext(model, groups, data))

    Reference:
        Luo et al., "ThiNet: A Filter Level Pruning Method for Deep Neural
        Network Compression", ICCV 2017, https://arxiv.org/abs/1707.06342
    """

    config_keys = ("samples_per_image", "min_samples", "max_samples", "seed")

    def __init__(
        self,
        reduction="sum",
        samples_per_image=10,
        min_samples=16,
        max_samples=None,
        seed=0,
    ):
        super().__init__(reduction, min_samples, max_samples)
        self.samples_per_image = check_count(
            samples_per_image, "samples_per_image"
        )
        self.seed = seed

    def score_batches(self, context, batches, groups):
        model = context.model
        grams = consumer_grams(
            model, groups, batches, self.samples_per_image, self.seed
        )
        scores, unsupported = {}, []
        for group in groups:
            entries = grams[group.name]
            if not entries:
                unsupported.append(group.name)
                continue
            gram = sum(g for _, g in entries)
            if not np.all(np.isfinite(gram)):
                check_finite_scores(np.full(group.size, np.nan), group.name)
            order, _ = greedy_removal_order(gram)
            ranks = np.empty(group.size)
            ranks[order] = np.arange(1, group.size + 1)
            scores[group.name] = check_finite_scores(ranks, group.name)
        return self.fill_unsupported(scores, groups, unsupported)

    def supports(self, group, model):
        return bool(consumer_members(model, group))


def __getattr__(name):
    # Deprecated: the driver moved up to `keras_neuronprune.pruning`.
    return moved_driver(
        __name__, name, "thinet_prune", "keras_neuronprune.pruning.thinet"
    )
