"""`BaseMethod`: one weight-pruning algorithm, configured by its constructor."""

import inspect

import numpy as np

from keras_neuronprune.utils.validation import check_int


class MethodContext:
    """The model, its masked layers and the operations a method may use.

    `WeightPruningController` builds one per model and passes it to every
    hook of its method, so a method reads its hyper-parameters from itself
    and the shared configuration (target sparsity, distribution, pattern,
    schedule, data, loss) only through these arguments.

    Attributes:
        model: the `PrunedModel`.
        layers: `[(path, weight-masked layer)]`.
        sparsity: the target sparsity, or None (the method's own choice).
        distribution: how a target spreads over layers (`"uniform"`,
            `"erk"` or `"global"`).
        schedule_at: `step -> (should_prune, sparsity)`.
        final_sparsity: `() -> float`, the sparsity at the end of pruning.
        select: `(scores, sparsity) -> masks`, keeping the best scores per
            `distribution` and the block / m-by-n pattern.
        layer_sparsities: `(shapes, sparsity) -> {path: sparsity}`.
        apply_masks: `(masks, reset=None)`, writes masks, zeroes pruned
            weights and their optimizer slots (and those of `reset`).
        batches: `count -> [(x, y)]`, the next batches of `data`.
        loss: `() -> callable loss` for gradients.
        mark_changed: `()`, tells the controller the masks changed.
    """

    def __init__(
        self,
        model,
        layers,
        *,
        sparsity,
        distribution,
        schedule_at,
        final_sparsity,
        select,
        layer_sparsities,
        apply_masks,
        batches,
        loss,
        mark_changed,
    ):
        self.model = model
        self.layers = layers
        self.sparsity = sparsity
        self.distribution = distribution
        self.schedule_at = schedule_at
        self.final_sparsity = final_sparsity
        self.select = select
        self.layer_sparsities = layer_sparsities
        self.apply_masks = apply_masks
        self.batches = batches
        self.loss = loss
        self.mark_changed = mark_changed


class BaseMethod:
    """One weight-pruning algorithm, driven by `WeightPruningController`.

    A method is configured by its constructor (its hyper-parameters are
    validated there and round-trip through `get_config` / `from_config`:
    every constructor argument is stored as the attribute of the same
    name). The controller owns the schedule, the masks and the shared
    operations; it passes them to every hook as a `MethodContext`, and the
    method decides *when* and *from which scores* masks change. Methods
    keep no state that must survive saving: everything lives in layer
    weights.

    Class attributes:
        name: the `method=` string.
        needs_data: whether `prune_weights` must receive `data`.
        data_purpose: what the data is for (in the error without data).
        needs_loss: whether a loss is needed (gradients).
        uses_schedule: whether a sparsity schedule drives the method.
        needs_sparsity: whether the method needs a target sparsity (or a
            schedule that gives one).
        default_distribution: how a global target is spread over layers.
        distributions: the accepted `distribution=` values.
        supports_patterns: whether block / m-by-n patterns apply.
        learned_mask: whether layers learn their masks (SCL).
    """

    name = None
    needs_data = False
    data_purpose = None
    needs_loss = False
    uses_schedule = True
    needs_sparsity = True
    default_distribution = "uniform"
    distributions = ("uniform", "erk", "global")
    supports_patterns = True
    learned_mask = False
    # Whether the method decides the sparsity itself (`sparsity` must then
    # be None) and the period of the default `ConstantSparsity` schedule.
    sets_sparsity = False
    default_schedule_frequency = 100

    def __init__(self):
        self.last_scores = {}

    @classmethod
    def argument_names(cls):
        """The constructor's hyper-parameter names."""
        parameters = inspect.signature(cls.__init__).parameters
        return tuple(name for name in parameters if name != "self")

    def get_config(self):
        return {name: getattr(self, name) for name in self.argument_names()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def fresh_copy(self):
        """The same configuration without runtime state (scores, flags)."""
        return type(self).from_config(self.get_config())

    def __repr__(self):
        arguments = ", ".join(
            f"{key}={value!r}" for key, value in self.get_config().items()
        )
        return f"{type(self).__name__}({arguments})"

    def masked_layer_config(self):
        """Extra config of the weight-masked layers this method needs."""
        return {}

    def initialize(self, context):
        """Called once by `prune_weights`, before any training."""

    def on_train_begin(self, context):
        """Called when `fit` starts, after the controller's checks."""

    def on_train_batch_begin(self, context, step):
        """Called before the optimizer step number `step`."""

    def on_train_batch_end(self, context, step):
        """Called after the optimizer step number `step`."""

    def on_epoch_end(self, context):
        """Called at the end of every epoch."""

    def scalars(self, context):
        return {}

    def histograms(self, context):
        if self.last_scores:
            return {
                name: np.asarray(score).reshape(-1)
                for name, score in self.last_scores.items()
            }
        out = {}
        for name, layer in context.layers:
            kernel = layer.masked_kernel()
            mask = layer.current_mask()
            out[name] = np.abs(kernel[mask > 0]).reshape(-1)
        return out


def magnitude_scores(layer, keep_pruned=True):
    """`|w|` of the masked kernel, with pruned entries at -inf."""
    scores = np.abs(layer.masked_kernel()).astype("float64")
    if keep_pruned:
        scores[layer.current_mask() == 0] = -np.inf
    return scores


def required_end_step(end_step, name, meaning):
    """Checks the `end_step` that `name` needs (an int >= 1)."""
    if end_step is None:
        raise ValueError(
            f"method={name!r} needs `end_step` (the step at which {meaning})."
            " Received: end_step=None"
        )
    return check_int(end_step, "end_step", 1)
