"""`GReg` (alias `"greg"`): pruning by growing regularisation (GReg-1/2).

Use with `prune_structured(criterion=GReg(...), schedule=OneShot(step=N))`
where `N >= criterion.schedule.limit_step() + stabilize_interval`
(`criterion.ready_step()`): `regularizer_for` attaches a
`GrowingRegularizer` to the kernel of every Conv/Dense layer, the
controller calls `update(context)` after every batch, which picks the
filters to remove at the schedule's pick step and grows their L2 penalty
(`GRegSchedule`), and `score` ranks the picked filters below all others so
that pruning `pruning_ratio` of each group removes exactly them.

State: the pick (`selection`) and the coefficients (`penalty`) live in the
`GrowingRegularizer` of each layer (non-trainable variables, written into
the layer config when the model is saved as `.keras`); the phase is a
function of the training step (`PrunedModel.pruning_step`). The criterion
object itself holds only configuration.
"""

import keras
import numpy as np

from keras_neuronprune.core.surgery import try_find_layer
from keras_neuronprune.criteria._layer_utils import axis_power_sums
from keras_neuronprune.criteria._layer_utils import first_positions
from keras_neuronprune.criteria._layer_utils import gather_positions
from keras_neuronprune.criteria._layer_utils import producer_kernel
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import check_finite_scores
from keras_neuronprune.regularizers import GRegSchedule
from keras_neuronprune.regularizers import GrowingRegularizer
from keras_neuronprune.regularizers.growing_regularizer import KEEP
from keras_neuronprune.regularizers.growing_regularizer import PRUNE
from keras_neuronprune.regularizers.growing_regularizer import UNDECIDED
from keras_neuronprune.utils.validation import check_fraction

_SCHEDULE_KEYS = (
    "variant",
    "update_interval",
    "granularity_prune",
    "upper_limit",
    "granularity_pick",
    "upper_limit_pick",
    "granularity_recover",
    "stabilize_interval",
    "start_step",
)


@keras.saving.register_keras_serializable(package="keras_neuronprune")
class GReg(Criterion):
    """Filter L1 norms, with GReg's growing L2 penalty on the picked filters.

    GReg-1 picks, per group, the `pruning_ratio` filters of lowest L1 norm
    at the start and grows their penalty; GReg-2 first grows a uniform
    penalty on all filters (so weights in flat loss directions shrink
    more), then picks by the current L1 norms. See `GRegSchedule` for the
    timeline and the defaults (the official code's).

    Scores: the L1 norm of the group's producer filters (combined by
    `reduction`); once picked, the picked channels are rescaled to below
    half the smallest unpicked score (their order kept), so any ranking
    removes them first.

    Args:
        pruning_ratio: fraction of each group's channels to pick, or a dict
            group name -> fraction (others use `default_ratio`).
        variant: "greg1" or "greg2".
        reduction: "sum", "mean" or "max" over the group's producers.
        default_ratio: ratio for groups missing from a dict
            `pruning_ratio`.
        **schedule_kwargs: `GRegSchedule` arguments (`update_interval`,
            `granularity_prune`, `upper_limit`, `granularity_pick`,
            `upper_limit_pick`, `granularity_recover`,
            `stabilize_interval`, `start_step`).

    Example:

    ```python
    greg = keras_neuronprune.criteria.GReg(
        pruning_ratio=0.5, update_interval=5, granularity_prune=1e-3,
        stabilize_interval=500)
    pruned = keras_neuronprune.prune_structured(
        model, criterion=greg, pruning_ratio=0.5,
        schedule=keras_neuronprune.schedules.OneShot(step=greg.ready_step()))
    ```

    Reference:
        Wang et al., "Neural Pruning via Growing Regularization", ICLR 2021,
        arXiv:2012.09243.
    """

    alias = "greg"

    def __init__(
        self,
        pruning_ratio=0.5,
        variant="greg1",
        reduction="sum",
        default_ratio=0.0,
        **schedule_kwargs,
    ):
        super().__init__(reduction)
        unknown = set(schedule_kwargs) - set(_SCHEDULE_KEYS)
        if unknown:
            raise TypeError(
                f"Unknown GReg argument(s) {sorted(unknown)}. "
                f"Schedule arguments: {list(_SCHEDULE_KEYS[1:])}"
            )
        self.pruning_ratio = _check_ratios(pruning_ratio)
        self.default_ratio = check_fraction(default_ratio, "default_ratio")
        self.schedule = GRegSchedule(variant=variant, **schedule_kwargs)

    @property
    def variant(self):
        return self.schedule.variant

    def ready_step(self):
        """The step from which the picked filters can be removed."""
        return self.schedule.limit_step() + self.schedule.stabilize_interval

    def ready(self, step):
        return self.schedule.done(int(step))

    def ratio_for(self, group_name):
        if isinstance(self.pruning_ratio, dict):
            return self.pruning_ratio.get(group_name, self.default_ratio)
        return self.pruning_ratio

    # Regularisers --------------------------------------------------------
    def regularizer_for(self, layer):
        if isinstance(layer, keras.layers.SeparableConv2D):
            return None
        if not getattr(layer, "built", False):
            return None
        kernel = producer_kernel(layer)
        if kernel is None:
            return None
        array, axis = kernel
        return GrowingRegularizer(int(array.shape[axis]), axis=axis)

    def regularized_weight(self, layer):
        return "kernel" if self.regularizer_for(layer) is not None else None

    # Reading the groups ----------------------------------------------------
    def _producers(self, group, model):
        found = []
        for member in group.members:
            if member.kind != "producer" or member.role != "output":
                continue
            layer = try_find_layer(model, member.layer)
            if layer is None or not layer.built:
                continue
            kernel = producer_kernel(layer)
            if kernel is None:
                continue
            reg = getattr(layer, "kernel_regularizer", None)
            if not isinstance(reg, GrowingRegularizer):
                reg = None
            found.append((member, kernel, reg))
        return found

    def _l1(self, producers):
        return self.reduce(
            [
                gather_positions(axis_power_sums(k[0], k[1], 1), m.channels)
                for m, k, _ in producers
            ]
        )

    def supports(self, group, model):
        return bool(self._producers(group, model))

    # Training-time state machine ------------------------------------------
    def update(self, context):
        """Picks (at the pick step) and grows the penalties for `step`."""
        step = int(context.step)
        for group in self.prunable_groups(context):
            producers = self._producers(group, context.model)
            regs = [(m, r) for m, _, r in producers if r is not None]
            if not regs:
                continue
            undecided = any(
                np.any(r.selection.numpy()[first_positions(m)] == UNDECIDED)
                for m, r in regs
            )
            if undecided and self.schedule.needs_pick(step):
                chosen = self._pick(group, self._l1(producers))
                for member, reg in regs:
                    selection = reg.selection.numpy().copy()
                    selection[first_positions(member)] = np.where(
                        chosen, PRUNE, KEEP
                    )
                    reg.set_selection(selection)
            for _, reg in regs:
                reg.set_penalty(
                    self.schedule.penalties(step, reg.selection.numpy())
                )

    def _pick(self, group, l1):
        count = int(np.floor(self.ratio_for(group.name) * group.size + 1e-9))
        count = min(count, group.size - 1)
        chosen = np.zeros(group.size, bool)
        if count > 0:
            chosen[np.argsort(l1, kind="stable")[:count]] = True
        return chosen

    def picked_channels(self, context):
        """Dict group name -> sorted picked group channels (empty if none)."""
        picked = {}
        for group in self.prunable_groups(context):
            state = self._selection(group, context.model)
            picked[group.name] = (
                np.flatnonzero(state == PRUNE)
                if state is not None
                else np.zeros(0, "int64")
            )
        return picked

    def _selection(self, group, model):
        for member, _, reg in self._producers(group, model):
            if reg is not None:
                state = reg.selection.numpy()[first_positions(member)]
                if np.all(state != UNDECIDED):
                    return state
        return None

    # Scores ------------------------------------------------------------------
    def score(self, context):
        groups = self.prunable_groups(context)
        scores, missing = {}, set()
        for group in groups:
            producers = self._producers(group, context.model)
            if not producers:
                missing.add(group.name)
                continue
            value = self._l1(producers)
            state = self._selection(group, context.model)
            if state is not None and np.any(state == PRUNE):
                value = _below_unpicked(value, state == PRUNE)
            scores[group.name] = check_finite_scores(value, group.name)
        return self.fill_unsupported(scores, groups, missing)

    def get_config(self):
        config = super().get_config()
        schedule = self.schedule.get_config()
        config.update(
            {
                "pruning_ratio": self.pruning_ratio,
                "default_ratio": self.default_ratio,
                **schedule,
            }
        )
        return config


def _below_unpicked(value, picked):
    value = np.asarray(value, "float64").copy()
    unpicked = value[~picked]
    floor = float(unpicked.min()) if unpicked.size else 1.0
    top = float(value[picked].max())
    if floor <= 0:
        value[picked] = 0.0
        return value
    value[picked] = 0.5 * floor * (value[picked] / top if top > 0 else 0.0)
    return value


def _check_ratios(value):
    if isinstance(value, dict):
        return {
            str(k): check_fraction(v, f"pruning_ratio[{k!r}]")
            for k, v in value.items()
        }
    return check_fraction(value, "pruning_ratio")
