"""Tiny models and a data-free test criterion for the pruning tests."""

import keras
import numpy as np

from keras_neuronprune.core.surgery import find_layer
from keras_neuronprune.criteria.base_criterion import Criterion


@keras.saving.register_keras_serializable(package="knp_tests")
class KernelL1(Criterion):
    """L1 norm of each producer's filters (test stand-in for `l1`)."""

    name = "test_l1"

    def score(self, context):
        scores = {}
        for group in context.groups:
            parts = []
            for m in group.members:
                if m.role != "output" or m.kind != "producer":
                    continue
                layer = find_layer(context.model, m.layer)
                kernel = np.asarray(layer.kernel.numpy())
                per = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(0)
                parts.append(per[m.channels[:, 0]])
            scores[group.name] = self.reduce(parts)
        return scores


@keras.saving.register_keras_serializable(package="knp_tests")
class FixedScores(Criterion):
    """Scores given per group (channel index order by default)."""

    name = "fixed"

    def __init__(self, table=None, reduction="sum"):
        super().__init__(reduction)
        self.table = {k: list(v) for k, v in (table or {}).items()}

    def get_config(self):
        return {**super().get_config(), "table": self.table}

    def score(self, context):
        return {
            g.name: np.asarray(
                self.table.get(g.name, np.arange(g.size, dtype="float64"))
            )
            for g in context.groups
        }


def small_cnn(seed=0, input_shape=(8, 8, 3), classes=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    y = keras.layers.Conv2D(12, 3, padding="same", name="conv2")(x)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    y = keras.layers.ReLU(name="relu2")(y)
    z = keras.layers.Conv2D(12, 1, name="conv3")(x)
    y = keras.layers.Add(name="add")([y, z])
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(16, activation="relu", name="fc1")(y)
    outputs = keras.layers.Dense(classes, name="logits")(y)
    model = keras.Model(inputs, outputs, name="small_cnn")
    _randomize_bn(model)
    return model


def _randomize_bn(model):
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.2, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.3, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0, 0.3, n).astype("float32"))
            layer.moving_variance.assign(
                rng.uniform(0.5, 2.0, n).astype("float32")
            )


def weights_snapshot(model):
    return [np.array(w.numpy()) for w in model.weights]
