"""RNI training makes the importances bimodal (a few hundred SGD steps)."""

import keras
import numpy as np
from criteria_helpers import group
from criteria_helpers import member

from keras_neuronprune import criteria
from keras_neuronprune.criteria import ScoringContext
from keras_neuronprune.layers import BoundedBatchNormalization


def bimodality_coefficient(values):
    """Sarle's coefficient: > 5/9 (uniform) suggests two modes."""
    v = np.asarray(values, "float64")
    n = v.size
    centred = v - v.mean()
    skew = np.mean(centred**3) / v.std() ** 3
    kurt = np.mean(centred**4) / v.std() ** 4 - 3
    return (skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def _train(criterion, steps=640):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 16)).astype("float32")
    teacher = np.zeros((16, 3))
    teacher[:3] = rng.normal(size=(3, 3)) * 3  # 3 informative inputs
    y = np.argmax(x @ teacher, axis=1)
    inputs = keras.Input((16,))
    h = inputs
    for i in (1, 2):
        h = keras.layers.Dense(32, use_bias=False, name=f"d{i}")(h)
        bn = BoundedBatchNormalization(name=f"b{i}")
        h = bn(h)
        bn.set_gamma_regularizer(criterion.regularizer_for(bn))
        h = keras.layers.ReLU()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    groups = [
        group(
            f"d{i}", 32, [member(f"b{i}", "output", "channelwise", range(32))]
        )
        for i in (1, 2)
    ]
    context = ScoringContext(model, groups)

    def importances():
        scores = criterion.score(context)
        return np.concatenate([scores["d1"], scores["d2"]])

    before = importances()
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=64, epochs=steps // 32, verbose=0)
    after = importances()

    def accuracy():
        return float(np.mean(np.argmax(model.predict(x, verbose=0), 1) == y))

    # Remove the globally least important half (the paper's global
    # quantile threshold) with the channel masks.
    dense = accuracy()
    threshold = np.quantile(after, 0.5)
    for i in (1, 2):
        bn = model.get_layer(f"b{i}")
        bn.set_output_mask(bn.importances() > threshold)
    pruned = accuracy()
    return before, after, history.history["accuracy"][-1], dense, pruned


def test_rni_importances_become_bimodal():
    # ResNet-56 setting of the paper (shift 0), lambda raised for a short run.
    before, after, accuracy, dense, pruned = _train(
        criteria.RNI(strength=1e-2, shift=0.0)
    )
    assert accuracy > 0.85
    # Half of the neurons receded: removing them costs (almost) nothing.
    assert pruned > dense - 0.02
    middle = lambda v: np.mean((v > 0.2) & (v < 0.8))  # noqa: E731
    # N(0, 1) initial gammas: unimodal, most importances in (0.2, 0.8).
    assert bimodality_coefficient(before) < 5 / 9 and middle(before) > 0.6
    assert bimodality_coefficient(after) > 0.8
    assert middle(after) < 0.15
    assert np.mean(after < 0.1) > 0.3 and np.mean(after > 0.5) > 0.2


def test_without_regulariser_importances_stay_spread():
    _, after, _, dense, pruned = _train(criteria.RNI(strength=0.0))
    assert bimodality_coefficient(after) < 0.7
    assert np.mean((after > 0.2) & (after < 0.8)) > 0.4
    # Without receding, removing half of the neurons costs accuracy.
    assert pruned < dense - 0.04
