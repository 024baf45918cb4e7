"""The contract every structured importance criterion follows.

A criterion is used in two ways:

- one-shot: `criterion.score(ScoringContext(model, groups, data, loss))`
  returns `{group_name: scores}` for every prunable group, and the caller
  keeps the highest-scoring channels (globally or per group);
- during training (`prune_structured`): the controller attaches
  `criterion.regularizer_for(layer)` (on the weight named by
  `criterion.regularized_weight(layer)`) to every layer of the training
  clone, calls `criterion.update(context)` after every training batch
  (stateful criteria such as GReg grow their penalties there; the default
  does nothing) and `criterion.score(context)` when it prunes.

A criterion returns scores for every prunable group of the context. Groups
it cannot measure (`supports(group, model)` is False, e.g. a group without
BatchNormalization for `"bn_scale"`) get a constant score equal to the
largest score it gave elsewhere (1.0 when it measured nothing), so a
global ranking never removes them, and a `UserWarning` names them; exclude
them with `ignored_layers` when pruning per group.
"""

import warnings

import numpy as np

NORMALIZATIONS = ("none", "mean", "max", "l2")


class ScoringContext:
    """What a criterion may look at when it scores channel groups.

    Args:
        model: the model being pruned. During training this is the
            `PrunedModel` (masked layers, gates, BoundedBatchNorm); for
            one-shot scoring it is the user's trained model. Layer names are
            those of the original model, so `group.members[i].layer` can be
            looked up with `model.get_layer`-style helpers.
        groups: list of `ChannelGroup` from
            `keras_neuronprune.channel_groups(original_model)`; only the
            prunable ones are scored.
        data: optional iterable of `(x, y)` batches (calibration data).
        loss: optional Keras loss (callable or name) for gradient criteria.
        step: training step at which scoring happens (for stateful criteria).
        verbose: 1 shows a Keras progress bar while the criterion scores
            (over groups, or over calibration batches for data-driven
            criteria that iterate with `progress`); 0 (default) is silent.
    """

    def __init__(self, model, groups, data=None, loss=None, step=0, verbose=0):
        self.model = model
        self.groups = groups
        self.data = data
        self.loss = loss
        self.step = step
        self.verbose = verbose


def progress(items, verbose=0, unit_name="step", total=None):
    """Iterates over `items`, showing a `keras.utils.Progbar` if `verbose`.

    The shared loop helper of the criteria: `for x, y in progress(batches,
    context.verbose, "batch")` gives data-driven scoring the same progress
    bar as `model.fit`, silenced with `verbose=0`.

    Args:
        items: an iterable (its `len` is the bar's target when it has one).
        verbose: 0 is silent; 1 a progress bar; 2 one line at the end.
        unit_name: what one item is, shown in the bar ("batch", "group").
        total: number of items when `items` has no `len`.

    Yields:
        The items of `items`, in order.
    """
    if not verbose:
        yield from items
        return
    import keras

    if total is None and hasattr(items, "__len__"):
        total = len(items)
    bar = keras.utils.Progbar(total, verbose=verbose, unit_name=unit_name)
    count = 0
    for item in items:
        yield item
        count += 1
        bar.update(count)
    if total is None:
        bar.update(count, finalize=True)


class Criterion:
    """Base class of channel-importance criteria.

    A criterion turns a `ScoringContext` into one non-negative score per
    channel of every prunable group: higher means more important. Member
    scores inside a group (the producers and consumers the group couples)
    are combined with `reduction` ("sum", "mean" or "max").

    Subclasses set `requires_data = True` when `score` needs `context.data`
    (calling it without data must raise a `ValueError` naming `data`), and
    implement `score`. A criterion that also trains (a sparsity regulariser)
    implements `regularizer_for(layer)` returning a Keras regulariser, or
    None. Criteria are registered serialisable under `keras_neuronprune`
    and have a string alias resolved by `keras_neuronprune.criteria.get`.
    """

    requires_data = False
    alias = None
    # Constructor arguments besides `reduction` that `get_config` writes,
    # in signature order (read back from the attributes of the same names).
    config_keys = ()

    def __init__(self, reduction="sum"):
        if reduction not in ("sum", "mean", "max"):
            raise ValueError(
                "`reduction` must be 'sum', 'mean' or 'max'. "
                f"Received: reduction={reduction!r}"
            )
        self.reduction = reduction

    def score(self, context):
        """Returns a dict group name -> float64 array of shape (size,)."""
        raise NotImplementedError

    def regularizer_for(self, layer):
        """The sparsity regulariser to put on `layer`, or None."""
        return None

    def regularized_weight(self, layer):
        """Name of the weight `regularizer_for(layer)` applies to."""
        return None

    def update(self, context):
        """Called after every training batch; stateful criteria override."""

    def supports(self, group, model):
        """Whether the criterion can measure `group` in `model`."""
        return True

    def prunable_groups(self, context):
        return [g for g in context.groups if getattr(g, "prunable", True)]

    def score_members(self, context, member_scores):
        """Scores every prunable group from its members' score arrays.

        Args:
            context: the `ScoringContext`.
            member_scores: callable `(group, model) -> list of arrays`, one
                per member the criterion can read (empty: unsupported).

        Returns:
            dict group name -> reduced, finite scores; unsupported groups
            are filled by `fill_unsupported`.
        """
        groups = self.prunable_groups(context)
        scores, missing = {}, set()
        verbose = getattr(context, "verbose", 0)
        for group in progress(groups, verbose, "group"):
            members = member_scores(group, context.model)
            if not members:
                missing.add(group.name)
                continue
            scores[group.name] = check_finite_scores(
                self.reduce(members), group.name
            )
        return self.fill_unsupported(scores, groups, missing)

    def fill_unsupported(self, scores, groups, names, top=None):
        """Gives the groups in `names` the largest score (see module doc).

        `top` overrides the score given (e.g. 1.0 for bounded scores).
        """
        if not names:
            return scores
        if top is None:
            values = [np.max(v) for v in scores.values() if np.size(v)]
            top = float(max(values)) if values else 1.0
        warnings.warn(
            f"Criterion {type(self).__name__} cannot measure channel "
            f"group(s) {sorted(names)}; they are scored as the most "
            "important channels and are not removed by a global ranking.",
            stacklevel=3,
        )
        for group in groups:
            if group.name in names:
                scores[group.name] = np.full(group.size, top, "float64")
        return scores

    def reduce(self, member_scores):
        """Combines a list of per-channel member score arrays."""
        stacked = np.stack([np.asarray(s, "float64") for s in member_scores])
        if self.reduction == "sum":
            return stacked.sum(axis=0)
        if self.reduction == "mean":
            return stacked.mean(axis=0)
        return stacked.max(axis=0)

    def get_config(self):
        config = {"reduction": self.reduction}
        config.update({key: getattr(self, key) for key in self.config_keys})
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def normalize_scores(scores, method):
    """Divides one member's scores by their mean, max or L2 norm.

    Args:
        scores: 1-D array of non-negative scores.
        method: "none", "mean", "max" or "l2". An all-zero vector is
            returned unchanged.

    Returns:
        float64 array of the same shape.
    """
    scores = np.asarray(scores, "float64")
    if method == "none":
        return scores
    if method == "mean":
        denominator = float(np.mean(np.abs(scores))) if scores.size else 0.0
    elif method == "max":
        denominator = float(np.max(np.abs(scores))) if scores.size else 0.0
    elif method == "l2":
        denominator = float(np.sqrt(np.sum(scores**2)))
    else:
        raise ValueError(
            f"`normalize` must be one of {NORMALIZATIONS}. "
            f"Received: normalize={method!r}"
        )
    return scores / denominator if denominator > 0 else scores


def check_normalize(method):
    if method not in NORMALIZATIONS:
        raise ValueError(
            f"`normalize` must be one of {NORMALIZATIONS}. "
            f"Received: normalize={method!r}"
        )
    return method


def check_finite_scores(scores, group_name):
    """Raises if a criterion produced NaN or infinite scores."""
    scores = np.asarray(scores)
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"Criterion produced non-finite importance scores for channel "
            f"group '{group_name}' ({int(np.sum(~np.isfinite(scores)))} of "
            f"{scores.size} channels). Check the learning rate, the data and "
            "the layer's weights."
        )
    return scores
