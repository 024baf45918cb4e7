"""Shared implementation of the `l1` and `l2` filter-norm criteria."""

from keras_neuronprune.core.surgery import try_find_layer
from keras_neuronprune.criteria._layer_utils import axis_power_sums
from keras_neuronprune.criteria._layer_utils import consumer_kernel_norms
from keras_neuronprune.criteria._layer_utils import gather_positions
from keras_neuronprune.criteria._layer_utils import producer_kernel
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import check_normalize
from keras_neuronprune.criteria.base_criterion import normalize_scores
from keras_neuronprune.criteria.head_scores import internal_power_sums


class FilterNorm(Criterion):
    """`||W_j||_p` of the filters producing each channel (base class).

    Subclasses set `p`. Members read: producers (`kind="producer"`,
    `role="output"`) through their kernel's output axis; with
    `include_consumers`, also the consumers' input weights of the channel
    (DepGraph-style group norms). A member's norm is normalised by
    `normalize` before the members are combined by `reduction`.
    """

    p = 1

    def __init__(
        self, reduction="sum", normalize="none", include_consumers=False
    ):
        super().__init__(reduction)
        self.normalize = check_normalize(normalize)
        self.include_consumers = bool(include_consumers)

    def _member_scores(self, group, model):
        p = self.p
        found = []
        for member in group.members:
            layer = try_find_layer(model, member.layer)
            if layer is None or not layer.built:
                continue
            vector = None
            if member.kind == "producer" and member.role == "output":
                kernel = producer_kernel(layer)
                if kernel is not None:
                    vector = axis_power_sums(kernel[0], kernel[1], p)
            elif (
                self.include_consumers
                and member.kind == "consumer"
                and member.role == "input"
            ):
                vector = consumer_kernel_norms(layer, p)
            elif member.role == "internal":  # attention heads
                vector = internal_power_sums(
                    layer, member, p, self.include_consumers
                )
            if vector is None:
                continue
            norms = gather_positions(vector, member.channels) ** (1.0 / p)
            found.append(normalize_scores(norms, self.normalize))
        return found

    def supports(self, group, model):
        return bool(self._member_scores(group, model))

    def score(self, context):
        return self.score_members(context, self._member_scores)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "normalize": self.normalize,
                "include_consumers": self.include_consumers,
            }
        )
        return config
