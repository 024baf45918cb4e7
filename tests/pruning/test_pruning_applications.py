"""prune_structured -> prune -> strip_pruning on real keras.applications.

The rewriter is proven on all of keras.applications in
tests/rewrite/test_applications_zoo.py; this checks the training-time path
(masked clone, gates or bounded BatchNormalization, strip) on the
architectures with the most varied graphs: MobileNetV3 (hard-swish as raw
`keras.ops` graph operations, squeeze-excite multiplies), EfficientNetV2
(SE, stochastic-depth-free residuals) and NASNet (concatenations of
separable-conv branches).
"""

import keras
import numpy as np
import pytest

from keras_neuronprune.core import PrunedModel
from keras_neuronprune.cost import count_cost
from keras_neuronprune.pruning import prune_structured
from keras_neuronprune.pruning import strip_pruning

CASES = [
    ("MobileNetV3Small", 32, "l1"),
    ("MobileNetV3Small", 32, "taylor"),
    ("MobileNetV3Large", 32, "rni"),
    ("EfficientNetV2B0", 32, "bn_scale"),
    ("NASNetMobile", 32, "l1"),
]


def _build(name, size):
    kwargs = dict(weights=None, input_shape=(size, size, 3))
    if name.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = False
    return getattr(keras.applications, name)(
        classifier_activation=None, **kwargs
    )


@pytest.mark.parametrize("name, size, criterion", CASES)
def test_pruned_and_stripped_models_compute_the_same(name, size, criterion):
    keras.utils.set_random_seed(0)
    model = _build(name, size)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, size=8)
    pruned = prune_structured(
        model,
        criterion=criterion,
        pruning_ratio=0.4,
        round_to=8,
        data=[(x, y)],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    pruned.controller.prune(pruned)
    final = strip_pruning(pruned)
    assert not isinstance(final, PrunedModel)
    assert count_cost(final).flops < count_cost(model).flops
    expected = np.asarray(pruned(x[:2], training=False))
    actual = np.asarray(final(x[:2], training=False))
    scale = max(float(np.abs(expected).max()), 1e-6)
    assert np.abs(expected - actual).max() <= 1e-5 * max(scale, 1.0)
