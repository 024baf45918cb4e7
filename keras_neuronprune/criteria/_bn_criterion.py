"""Base of the criteria that score BatchNormalization parameters (private)."""

from keras_neuronprune.criteria._layer_utils import bn_members
from keras_neuronprune.criteria._layer_utils import bn_parameters
from keras_neuronprune.criteria._layer_utils import first_positions
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import normalize_scores


class BNParameterCriterion(Criterion):
    """Scores a group from the BatchNormalization(s) that output it.

    Members read: every BatchNormalization (or subclass) outputting the
    group's channels (`bn_members`); each member's scores come from
    `bn_scores(scale, shift)` on its channels, are normalised by
    `self.normalize` and combined by `reduction`. Groups without a
    BatchNormalization are unsupported (they get the top score).
    """

    normalize = "none"

    def bn_scores(self, scale, shift):
        """Per-channel scores from the member's effective scale and shift."""
        raise NotImplementedError

    def supports(self, group, model):
        return bool(bn_members(group, model))

    def score(self, context):
        return self.score_members(context, self._member_scores)

    def _member_scores(self, group, model):
        members = []
        for member, layer in bn_members(group, model):
            scale, shift = bn_parameters(layer)
            positions = first_positions(member)
            values = self.bn_scores(scale[positions], shift[positions])
            members.append(normalize_scores(values, self.normalize))
        return members
